#!/bin/sh
# Builds the remediator binary the way releases and the container image are built: static
# (CGO_ENABLED=0), free of local paths (-trimpath), stripped, with the version and build
# details stamped into github.com/prometheus/common/version. The Dockerfile's build stage,
# `make build` and scripts/test.sh all run this script, so the flags are written here only.
#
# Usage: scripts/build.sh [OUTPUT]        (default: bin/remediator)
#
# Environment: VERSION, REVISION, BRANCH, BUILD_USER and BUILD_DATE replace what git and
# the machine say (a Docker build has no .git: pass them as build arguments); GOOS and
# GOARCH cross-compile as usual. POSIX sh, so that any Go image can run it.
set -eu

out=${1:-bin/remediator}
cd "$(dirname "$0")/.."

git_or() {
	git "$@" 2>/dev/null || return 1
}

: "${VERSION:=$(git_or describe --tags --always --dirty || echo devel)}"
: "${REVISION:=$(git_or rev-parse HEAD || echo unknown)}"
: "${BRANCH:=$(git_or rev-parse --abbrev-ref HEAD || echo unknown)}"
: "${BUILD_USER:=$(id -un 2>/dev/null || echo unknown)@$(hostname 2>/dev/null || echo unknown)}"
: "${BUILD_DATE:=$(date -u +%Y%m%d-%H:%M:%S)}"

pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Revision=$REVISION -X $pkg.Branch=$BRANCH"
ldflags="$ldflags -X $pkg.BuildUser=$BUILD_USER -X $pkg.BuildDate=$BUILD_DATE"

CGO_ENABLED=0 exec go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/remediator
