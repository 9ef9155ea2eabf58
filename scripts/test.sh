#!/usr/bin/env bash
# Runs every check remediator's tests need, from any working directory: installs the
# peers the tests run against when they are missing, starts shared services (stopped
# again on exit), then runs go vet, the tests with the race detector, and each fuzz
# target briefly. Safe to run again and again; quick once the tools are installed.
#
# Environment:
#   FUZZTIME  how long each fuzz target runs (default 10s)
#   CI=true   makes tests fail, instead of skip, when a peer is missing
#   REMEDIATOR_MOTO_VENV  where moto's virtualenv lives (default
#             ${XDG_CACHE_HOME:-$HOME/.cache}/remediator/moto-venv, kept between runs)
#   REMEDIATOR_TOOLS_BIN  where helm is built (default
#             ${XDG_CACHE_HOME:-$HOME/.cache}/remediator/bin, kept between runs)
set -euo pipefail

readonly alertmanager_version=0.31.1
readonly alertmanager_module=github.com/prometheus/alertmanager
readonly moto_version=5.2.5
readonly helm_version=3.21.4
readonly helm_module=helm.sh/helm/v3
# helm's release build stamps its version and the Kubernetes version of its client-go
# (v0.36); without them, helm template assumes Kubernetes 1.20 and refuses the chart.
readonly helm_ldflags="-X $helm_module/internal/version.version=v$helm_version \
-X $helm_module/pkg/chartutil.k8sVersionMajor=1 -X $helm_module/pkg/chartutil.k8sVersionMinor=36 \
-X $helm_module/pkg/lint/rules.k8sVersionMajor=1 -X $helm_module/pkg/lint/rules.k8sVersionMinor=36"
moto_venv=${REMEDIATOR_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/remediator/moto-venv}
tools_bin=${REMEDIATOR_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/remediator/bin}
fuzztime=${FUZZTIME:-10s}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

work=$(mktemp -d)
service_pids=()

section() {
	printf '\n==> %s\n' "$*"
}

# stop_services ends every service start_service launched, then removes the work folder.
stop_services() {
	local pid
	for pid in "${service_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap stop_services EXIT

# start_service NAME COMMAND... runs COMMAND in the background, its output in
# $work/NAME.log, and has it stopped when the script exits.
start_service() {
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	service_pids+=("$!")
	echo "started $name (pid $!, log $work/$name.log)"
}

require_go() {
	if ! command -v go >/dev/null 2>&1; then
		echo "go not found on PATH: install Go $(sed -n 's/^go //p' go.mod) or newer" >&2
		exit 1
	fi
	go version
}

# go_bin_dir is where go install puts binaries.
go_bin_dir() {
	local gobin
	gobin=$(go env GOBIN)
	if [[ -n $gobin ]]; then
		echo "$gobin"
		return
	fi
	local gopath
	gopath=$(go env GOPATH)
	echo "${gopath%%:*}/bin"
}

# is_alertmanager_version BIN tells whether BIN is Alertmanager $alertmanager_version.
# go install leaves --version empty, so the module version Go recorded counts too.
is_alertmanager_version() {
	local bin=$1
	[[ -x $bin ]] || return 1
	local recorded="^[[:space:]]+mod[[:space:]]+$alertmanager_module[[:space:]]+v$alertmanager_version([[:space:]]|$)"
	if go version -m "$bin" 2>/dev/null | grep -Eq "$recorded"; then
		return 0
	fi
	"$bin" --version 2>&1 | grep -q "version $alertmanager_version "
}

install_alertmanager() {
	local bin
	bin="$(go_bin_dir)/alertmanager"
	if is_alertmanager_version "$bin"; then
		echo "Alertmanager $alertmanager_version already at $bin"
	else
		echo "installing Alertmanager $alertmanager_version into $(go_bin_dir)"
		go install "$alertmanager_module/cmd/alertmanager@v$alertmanager_version"
		if ! is_alertmanager_version "$bin"; then
			echo "go install did not leave Alertmanager $alertmanager_version at $bin" >&2
			exit 1
		fi
	fi
	export REMEDIATOR_ALERTMANAGER_BIN=$bin
}

# has_moto tells whether moto's virtualenv holds moto $moto_version with its server's
# dependencies.
has_moto() {
	[[ -x $moto_venv/bin/moto_server ]] || return 1
	"$moto_venv/bin/python" -c '
import sys, importlib.metadata as md
import flask, flask_cors  # moto[server]
sys.exit(md.version("moto") != sys.argv[1])' "$moto_version" 2>/dev/null
}

install_moto() {
	if has_moto; then
		echo "moto $moto_version already in $moto_venv"
		return
	fi
	if ! command -v python3 >/dev/null 2>&1; then
		echo "python3 not found on PATH: install Python 3 with venv to run moto" >&2
		exit 1
	fi
	echo "installing moto $moto_version into $moto_venv"
	mkdir -p "$(dirname "$moto_venv")"
	python3 -m venv --clear "$moto_venv"
	"$moto_venv/bin/python" -m pip install --quiet "moto[server]==$moto_version"
	if ! has_moto; then
		echo "pip did not leave moto $moto_version in $moto_venv" >&2
		exit 1
	fi
}

# is_helm_version BIN tells whether BIN is helm $helm_version, built with the release's
# version stamps.
is_helm_version() {
	local bin=$1
	[[ -x $bin ]] || return 1
	go version -m "$bin" 2>/dev/null |
		grep -Eq "^[[:space:]]+mod[[:space:]]+$helm_module[[:space:]]+v$helm_version([[:space:]]|$)" &&
		[[ $("$bin" version --template '{{.Version}}' 2>/dev/null) == "v$helm_version" ]]
}

# install_helm builds helm from the Go module proxy once, into $tools_bin.
install_helm() {
	local bin=$tools_bin/helm
	if is_helm_version "$bin"; then
		echo "helm $helm_version already at $bin"
	else
		echo "building helm $helm_version into $tools_bin (a few minutes the first time)"
		mkdir -p "$tools_bin"
		GOBIN=$tools_bin go install -ldflags "$helm_ldflags" "$helm_module/cmd/helm@v$helm_version"
		if ! is_helm_version "$bin"; then
			echo "go install did not leave helm $helm_version at $bin" >&2
			exit 1
		fi
	fi
	export REMEDIATOR_HELM_BIN=$bin
}

# dockerfile_build_command prints the build stage's RUN command that calls
# scripts/build.sh, its continuation lines joined.
dockerfile_build_command() {
	awk '
		/^RUN .*scripts\/build\.sh/ { cmd = substr($0, 5); more = /\\$/; next }
		more { cmd = cmd "\n" $0; more = /\\$/ }
		END { print cmd }' Dockerfile | sed 's/\\$//' | tr '\n' ' '
}

# check_image_build runs the Dockerfile's build command as its build stage would, with the
# target platform and build arguments in the environment and /out moved under $work, then
# checks the binary: static, without local paths, and stamped with the version.
check_image_build() {
	local out=$work/image cmd bin
	cmd=$(dockerfile_build_command)
	if [[ $cmd != *"scripts/build.sh /out/remediator"* ]]; then
		echo "the Dockerfile's build stage no longer runs scripts/build.sh /out/remediator" >&2
		exit 1
	fi
	cmd=${cmd//\/out\//$out/}
	echo "RUN $cmd"
	mkdir -p "$out"
	TARGETOS=linux TARGETARCH=$(go env GOARCH) VERSION=9.9.9-test REVISION=0123456789abcdef \
		BRANCH=test-branch BUILD_USER=test@build BUILD_DATE=20260101-00:00:00 sh -c "$cmd"
	bin=$out/remediator

	if command -v file >/dev/null 2>&1; then
		file "$bin" | grep -q 'statically linked' || { file "$bin" >&2; echo "not static" >&2; exit 1; }
	fi
	local info
	info=$(go version -m "$bin")
	for want in 'CGO_ENABLED=0' '-trimpath=true'; do
		grep -qF -- "$want" <<<"$info" || { echo "$bin was not built with $want" >&2; exit 1; }
	done
	local version
	version=$("$bin" version)
	for want in 'version 9.9.9-test' 'revision: 0123456789abcdef' 'branch: test-branch' \
		'build user:       test@build' 'build date:       20260101-00:00:00'; do
		grep -qF -- "$want" <<<"$version" || {
			echo "$bin version does not say \"$want\":" >&2
			echo "$version" >&2
			exit 1
		}
	done
	echo "static, stamped: $(head -1 <<<"$version")"
	check_image_files "$bin"
}

# runtime_stage prints the Dockerfile's last stage.
runtime_stage() {
	awk '/^FROM / { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }' Dockerfile
}

# check_image_files lays out, under $work/image-root, what the runtime stage copies from
# the repository, and runs `remediator check` on the configuration its CMD names.
check_image_files() {
	local bin=$1 root=$work/image-root src dest config
	while read -r src dest; do
		if [[ $dest == */ ]]; then
			mkdir -p "$root$dest"
		else
			mkdir -p "$root$(dirname "$dest")"
		fi
		# shellcheck disable=SC2086 # src is a glob, as COPY takes it
		cp $src "$root$dest"
		echo "COPY $src $dest"
	done < <(runtime_stage | sed -nE 's/^COPY ([^-][^ ]*) ([^ ]+)$/\1 \2/p')
	config=$(runtime_stage | sed -nE 's/^CMD .*"--config\.file=([^"]+)".*/\1/p')
	if [[ -z $config ]]; then
		echo "the Dockerfile's CMD names no --config.file" >&2
		exit 1
	fi
	"$bin" check --config.file="$root$config"
}

# check_chart lints and renders the Helm chart with its defaults and each value set in its
# ci/ folder.
check_chart() {
	local chart=charts/remediator set name
	"$REMEDIATOR_HELM_BIN" lint --strict "$chart"
	for set in "$chart"/ci/*-values.yaml; do
		name=$(basename "$set" -values.yaml)
		"$REMEDIATOR_HELM_BIN" lint --strict --quiet "$chart" -f "$set"
		"$REMEDIATOR_HELM_BIN" template remediator "$chart" --namespace monitoring -f "$set" \
			>"$work/chart-$name.yaml"
		echo "$set: lint passed, template rendered $(grep -c '^kind: ' "$work/chart-$name.yaml") objects"
	done
}

# free_port prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	"$moto_venv/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# moto_answers URL tells whether moto at URL answers, by resetting it.
moto_answers() {
	"$moto_venv/bin/python" -c '
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/moto-api/reset", method="POST")
urllib.request.urlopen(req, timeout=2).read()' "$1" 2>/dev/null
}

# start_moto starts one moto server for every test that talks to AWS; the tests reset it
# and take turns (internal/testpeer/moto.go).
start_moto() {
	local port url pid
	port=$(free_port)
	url=http://127.0.0.1:$port
	start_service moto "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$port"
	pid=${service_pids[-1]}
	for _ in $(seq 300); do
		if moto_answers "$url"; then
			export REMEDIATOR_MOTO_ENDPOINT=$url
			echo "moto answers at $url"
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "moto did not answer at $url; its log:" >&2
	cat "$work/moto.log" >&2
	exit 1
}

# start_services starts the peers that tests share: moto's server. Alertmanager is not
# one of them: each test starts its own, with its own configuration.
start_services() {
	start_moto
}

# run_fuzz_targets runs every func FuzzXxx in the repository's tests, one at a time:
# go test -fuzz accepts a single target per run.
run_fuzz_targets() {
	local found=0 file name dir
	while IFS=: read -r file name; do
		dir=$(dirname "$file")
		found=$((found + 1))
		echo "--- $name in ./$dir for $fuzztime"
		go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "./$dir"
	done < <(grep -rEo --include='*_test.go' --exclude-dir=.git --exclude-dir=vendor \
		'^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]*)\($#:\1#' | sort)
	if ((found == 0)); then
		echo "no fuzz targets found"
	fi
}

main() {
	local started=$SECONDS

	section "tools"
	require_go
	install_alertmanager
	install_moto
	install_helm

	section "services"
	start_services

	section "go vet"
	go vet ./...

	section "image build (the Dockerfile's build stage, without Docker)"
	check_image_build

	section "helm chart"
	check_chart

	section "go test -race"
	go test -race -count=1 ./...

	section "fuzz"
	run_fuzz_targets

	section "all checks passed in $((SECONDS - started))s"
}

main "$@"
