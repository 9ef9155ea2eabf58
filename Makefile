# Build, run and check remediator. `make test` is the README's test command.

GO ?= go

VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell id -un 2>/dev/null || echo unknown)@$(shell hostname 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)

version_pkg := github.com/prometheus/common/version
ldflags := -s -w \
	-X $(version_pkg).Version=$(VERSION) \
	-X $(version_pkg).Revision=$(REVISION) \
	-X $(version_pkg).Branch=$(BRANCH) \
	-X $(version_pkg).BuildUser=$(BUILD_USER) \
	-X $(version_pkg).BuildDate=$(BUILD_DATE)

.PHONY: all test build run lint

all: lint build

# test installs the peers the tests need, then vets, tests and fuzzes everything.
test:
	scripts/test.sh

# build writes bin/remediator with its version and build details stamped in.
build:
	$(GO) build -trimpath -ldflags '$(ldflags)' -o bin/remediator ./cmd/remediator

# run serves on the embedded defaults; pass more flags with ARGS="...".
run:
	$(GO) run ./cmd/remediator serve $(ARGS)

# lint fails on files gofmt would change and on go vet findings.
lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
