#!/usr/bin/env bash
# Measures the webhook under load on loopback, side by side with two reference handlers
# served by scripts/loadref: one that only drains the body, and one that checks the
# bearer token and decodes the body with encoding/json. It runs wrk at full speed against
# each target, then hey at a steady 1,000 notifications/s against each, then reads each
# process's peak RSS. It prints a Markdown table and fails when any request got a non-2xx
# answer; a missed target is reported, not a failure.
#
# Usage: scripts/load.sh
# Environment: LOAD_DURATION (default 10s) is the length of each run; LOAD_QUEUE_SIZE
# (default 10000, the shipped default) is the remediator's queue.size. Its workers keep
# the queue near empty, and a full queue would answer 503 and fail the run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly duration=${LOAD_DURATION:-10s}
readonly queue_size=${LOAD_QUEUE_SIZE:-10000}
readonly body_file=$PWD/testdata/notifications/load-10-alerts.json
readonly wrk_threads=2 wrk_connections=32
# hey's -q is per worker: 10 workers at 100 each make 1,000 notifications/s.
readonly hey_workers=10 hey_rate=100

tmp=$(mktemp -d)
pids=()
warnings=()

die() {
	echo "load.sh: $*" >&2
	exit 1
}

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_tools() {
	local missing=() tool
	for tool in wrk hey curl go; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	if ((${#missing[@]} > 0)); then
		die "missing ${missing[*]}: install the load generators with 'apt-get install wrk hey'"
	fi
}

# free_port prints a loopback port nothing listens on.
free_port() {
	local port
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "found no free loopback port in 50 tries"
}

# wait_ready polls url until it answers 2xx, for at most 10 s.
wait_ready() {
	local name=$1 pid=$2 url=$3
	for _ in $(seq 1 100); do
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$tmp/$name.log" >&2 || true
			die "$name exited before it was ready"
		fi
		sleep 0.1
	done
	die "$name was not ready after 10 s"
}

build() {
	go build -o "$tmp/remediator" ./cmd/remediator
	go build -o "$tmp/loadref" ./scripts/loadref
}

write_inputs() {
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/token")
	token=$(<"$tmp/token")
	cat >"$tmp/remediator.yml" <<EOF
webhook:
  auth:
    bearer_token_file: $tmp/token
queue:
  size: $queue_size
EOF
	(umask 077 && cat >"$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
local f = assert(io.open("$body_file", "rb"))
wrk.body = f:read("*a")
f:close()
EOF
	)
}

# start_remediator and start_loadref set url_<name> and pid_<name>.
start_remediator() {
	local port
	port=$(free_port)
	"$tmp/remediator" serve --config.file="$tmp/remediator.yml" --web.listen-address="127.0.0.1:$port" \
		--storage.path="$tmp/data" --log.level=warn 2>"$tmp/remediator.log" &
	pid_remediator=$!
	pids+=("$pid_remediator")
	url_remediator=http://127.0.0.1:$port/webhook
	wait_ready remediator "$pid_remediator" "http://127.0.0.1:$port/readyz"
}

# Each reference runs in its own process, so that each peak RSS is its own.
start_loadref() {
	local name=$1 port pid
	port=$(free_port)
	"$tmp/loadref" -listen "127.0.0.1:$port" -token-file "$tmp/token" 2>"$tmp/$name.log" &
	pid=$!
	pids+=("$pid")
	printf -v "pid_$name" %s "$pid"
	printf -v "url_$name" %s "http://127.0.0.1:$port/$name"
	wait_ready "$name" "$pid" "http://127.0.0.1:$port/drain"
}

# run_wrk drives a target at full speed and sets wrk_rps, wrk_p50, wrk_p99 (ms).
run_wrk() {
	local name=$1 url=$2 out=$tmp/wrk-$1.txt bad
	wrk -t"$wrk_threads" -c"$wrk_connections" -d"$duration" --latency -s "$tmp/post.lua" "$url" >"$out"
	bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
	if [[ -n $bad ]]; then
		cat "$out" >&2
		die "wrk against $name: $bad responses were not 2xx"
	fi
	if grep -q 'Socket errors:' "$out"; then
		cat "$out" >&2
		die "wrk against $name: socket errors"
	fi
	wrk_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
	wrk_p50=$(wrk_percentile 50 "$out")
	wrk_p99=$(wrk_percentile 99 "$out")
}

# wrk_percentile prints a percentile of wrk's latency distribution in milliseconds.
wrk_percentile() {
	awk -v p="$1%" '
		function ms(v) {
			if (v ~ /us$/) return v / 1000
			if (v ~ /ms$/) return v + 0
			if (v ~ /m$/) return v * 60000
			return v * 1000
		}
		/Latency Distribution/ { in_dist = 1; next }
		in_dist && $1 == p { printf "%.2f", ms($2); exit }
	' "$2"
}

# run_hey sends a steady 1,000 notifications/s and sets hey_rps, hey_p50, hey_p99 (ms).
# The token shows in hey's arguments; it is a throwaway made for this run.
run_hey() {
	local name=$1 url=$2 out=$tmp/hey-$1.txt bad
	hey -z "$duration" -c "$hey_workers" -q "$hey_rate" -m POST -T application/json \
		-H "Authorization: Bearer $token" -D "$body_file" "$url" >"$out"
	bad=$(awk '/^Status code distribution:/ { in_codes = 1; next }
		in_codes && /^ *\[[0-9]+\]/ && $1 !~ /^\[2/ { print $1 }' "$out")
	if [[ -n $bad ]] || grep -q '^Error distribution:' "$out"; then
		cat "$out" >&2
		die "hey against $name: answers other than 2xx or errors"
	fi
	hey_rps=$(awk '/Requests\/sec:/ { printf "%.0f", $2 }' "$out")
	hey_p50=$(hey_percentile 50 "$out")
	hey_p99=$(hey_percentile 99 "$out")
	if ((hey_rps < hey_workers * hey_rate * 95 / 100)); then
		warnings+=("$name held only $hey_rps of $((hey_workers * hey_rate)) notifications/s:" \
			"the machine was too busy for its latency figures to mean much")
	fi
}

# hey_percentile prints a percentile of hey's latency distribution in milliseconds.
hey_percentile() {
	awk -v p="$1%" '$1 == p && $2 == "in" { printf "%.1f", $3 * 1000; exit }' "$2"
}

# peak_rss prints the process's peak resident set size in MiB.
peak_rss() {
	awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# The targets run one after another on a machine that may be busy with other work; the
# full-speed runs go back to back so that the references and the remediator meet much
# the same background load, and so do the steady runs.
measure_max() {
	local name=$1 url_var=url_$1
	echo "measuring $name at full speed" >&2
	run_wrk "$name" "${!url_var}"
	rps[$name]=$wrk_rps
	latency_max[$name]="$wrk_p50 / $wrk_p99"
}

measure_steady() {
	local name=$1 url_var=url_$1
	echo "measuring $name at 1,000/s" >&2
	run_hey "$name" "${!url_var}"
	rps_steady[$name]=$hey_rps
	latency_steady[$name]="$hey_p50 / $hey_p99"
	p99_steady[$name]=$hey_p99
}

measure_rss() {
	local name=$1 pid_var=pid_$1
	rss[$name]=$(peak_rss "${!pid_var}")
}

print_machine() {
	echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs," \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo);" \
		"load average before the run: $(cut -d' ' -f1-3 /proc/loadavg); $(go version | cut -d' ' -f3)"
	echo
}

print_table() {
	echo "| target | notifications/s (max) | of decode | p50 / p99 at max (ms)" \
		"| notifications/s (steady) | p50 / p99 at 1,000/s (ms) | peak RSS (MiB) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	local name share
	for name in drain decode remediator; do
		share=$(percent_of_decode "${rps[$name]}")
		echo "| $name | ${rps[$name]} | $share% | ${latency_max[$name]} | ${rps_steady[$name]}" \
			"| ${latency_steady[$name]} | ${rss[$name]} |"
	done
	echo
}

# percent_of_decode prints a throughput as a whole percentage of the decode reference's.
percent_of_decode() {
	awk -v r="$1" -v d="${rps[decode]}" 'BEGIN { printf "%.0f", 100 * r / d }'
}

verdict() {
	awk -v ok="$1" 'BEGIN { print (ok ? "met" : "missed") }'
}

print_targets() {
	local share
	share=$(percent_of_decode "${rps[remediator]}")
	echo "- throughput: ${share}% of the decode reference (target at least 70%):" \
		"$(verdict "$((share >= 70))")"
	echo "- p99 at 1,000/s: ${p99_steady[remediator]} ms (target under 10 ms):" \
		"$(verdict "$(awk -v v="${p99_steady[remediator]}" 'BEGIN { print (v < 10) }')")"
	echo "- peak RSS: ${rss[remediator]} MiB (target under 50 MiB):" \
		"$(verdict "$(awk -v v="${rss[remediator]}" 'BEGIN { print (v < 50) }')")"
}

# check_accepted prints, from the remediator's own metrics, how many notifications it
# accepted and how many it turned away because the queue was full.
check_accepted() {
	local url=${url_remediator%/webhook}/metrics metrics
	metrics=$(curl -fsS "$url")
	echo "- remediator metrics: $(awk '/^remediator_notifications_total\{result="(accepted|queue_full)"\}/ {
		printf "%s%s", sep, $0; sep = ", " } END { print "" }' <<<"$metrics")"
}

print_warnings() {
	local w
	for w in "${warnings[@]}"; do
		echo "- warning: $w"
	done
	echo "- load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main() {
	require_tools
	build
	write_inputs
	start_remediator
	start_loadref drain
	start_loadref decode

	declare -gA rps latency_max rps_steady latency_steady p99_steady rss
	print_machine
	local phase target
	for phase in measure_max measure_steady measure_rss; do
		for target in drain decode remediator; do
			"$phase" "$target"
		done
	done
	print_table
	print_targets
	check_accepted
	print_warnings
}

main "$@"
