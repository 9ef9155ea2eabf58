# Build, run and check remediator. `make test` is the README's test command.

GO ?= go

# The version and build details scripts/build.sh stamps; it asks git and the machine for
# those left unset (make build VERSION=1.2.3).
export VERSION REVISION BRANCH BUILD_USER BUILD_DATE

IMAGE ?= remediator:dev

.PHONY: all test build image run lint

all: lint build

# test installs the peers the tests need, then vets, tests and fuzzes everything.
test:
	scripts/test.sh

# build writes bin/remediator as the image has it: static, stamped with its version.
build:
	scripts/build.sh bin/remediator

# image builds the container image $(IMAGE) with Docker.
image:
	docker build -t $(IMAGE) \
		--build-arg VERSION="$${VERSION:-$$(git describe --tags --always --dirty 2>/dev/null || echo devel)}" \
		--build-arg REVISION="$${REVISION:-$$(git rev-parse HEAD 2>/dev/null || echo unknown)}" \
		--build-arg BRANCH="$${BRANCH:-$$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)}" .

# run serves on the embedded defaults; pass more flags with ARGS="...".
run:
	$(GO) run ./cmd/remediator serve $(ARGS)

# lint fails on files gofmt would change and on go vet findings.
lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
