# remediator's container image: a static binary on distroless, running as an unprivileged
# user, with the shipped policy packs and a configuration that runs as it is.
#
#   docker build -t remediator \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run -p 9795:9795 -v remediator-data:/var/lib/remediator remediator
#
# The build stage is only scripts/build.sh, which scripts/test.sh runs too: whatever
# flags this image is built with are tested on every run of the test command.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION
ARG REVISION
ARG BRANCH
ARG BUILD_USER
ARG BUILD_DATE
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH scripts/build.sh /out/remediator \
	&& mkdir -p /out/storage

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="remediator" \
	org.opencontainers.image.description="Runs guarded remediation policies for Alertmanager alerts" \
	org.opencontainers.image.source="https://github.com/remediator/remediator" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}"

COPY --from=build /out/remediator /usr/local/bin/remediator
# the shipped packs, and the example configuration beside them as in the repository, so
# that its relative policy_files path (../policies/...) holds
COPY policies/*.yaml /etc/remediator/policies/
COPY examples/remediator.yml /etc/remediator/examples/remediator.yml
# the state store: mount a persistent volume here
COPY --from=build --chown=65532:65532 /out/storage /var/lib/remediator

USER 65532:65532
EXPOSE 9795
# serve is remediator's default command, so arguments alone (--config.file=...) run the
# server, and other commands still work: docker run IMAGE check --config.file=...
ENTRYPOINT ["/usr/local/bin/remediator"]
CMD ["serve", "--config.file=/etc/remediator/examples/remediator.yml", "--storage.path=/var/lib/remediator"]
