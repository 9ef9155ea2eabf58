#!/usr/bin/env bash
# A storm of one alert: 10,000 copies of the same notification in ten seconds, as a
# misconfigured Alertmanager or a retry loop would send. Prints how many runs started
# (the guards must let exactly one through) and the server's peak RSS, and fails when
# more than one run started or a request got a non-2xx answer.
#
# Usage: scripts/storm.sh    (needs hey: apt-get install hey)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v hey >/dev/null || { echo "storm.sh: install hey: apt-get install hey" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
go build -o "$tmp/remediator" ./cmd/remediator
echo "storm-token" >"$tmp/token"
cat >"$tmp/storm.yaml" <<'YAML'
policies:
  - name: storm
    match: ['alertname="BlackboxTLSCertExpiringSoonWarning"']
    steps:
      - id: live
        action: tls.probe
        with: {address: "127.0.0.1:1", timeout: 1s}
        on_error: continue
      - id: page
        action: escalate
        with: {reason: "storm"}
YAML
cat >"$tmp/remediator.yml" <<YAML
webhook:
  auth: {bearer_token_file: token}
policy_files: [storm.yaml]
YAML
"$tmp/remediator" serve --config.file="$tmp/remediator.yml" --web.listen-address="127.0.0.1:$port" \
	--storage.path="$tmp/data" --log.level=warn >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
	sleep 0.1
done

# 20 workers at 50 notifications/s each: 1,000/s, 10,000 in ten seconds
hey -n 10000 -c 20 -q 50 -m POST -T application/json -H "Authorization: Bearer storm-token" \
	-D testdata/notifications/alertmanager-0.35-firing.json "http://127.0.0.1:$port/webhook" >"$tmp/hey.txt"
sleep 2

metric() { curl -fs "http://127.0.0.1:$port/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
runs=$(metric 'remediator_runs_total{')
dups=$(metric 'remediator_skips_total{policy="storm",reason="duplicate"}')
accepted=$(metric 'remediator_notifications_total{result="accepted"}')
rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
codes=$(awk '/Status code distribution/ { on = 1; next } on && /\[/ { print }' "$tmp/hey.txt" | xargs)
rate=$(awk '/Requests\/sec/ { print $2 }' "$tmp/hey.txt")
p99=$(awk '/99% in/ { printf "%.1f", $3 * 1000 }' "$tmp/hey.txt")

echo "| notifications accepted | answers | rate (/s) | p99 (ms) | runs started | duplicates skipped | peak RSS (MiB) |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
echo "| $accepted | $codes | $rate | $p99 | $runs | $dups | $rss |"

[[ $runs == 1 ]] || { echo "storm.sh: $runs runs started, want 1" >&2; exit 1; }
[[ $codes == "[200] 10000 responses" ]] || { echo "storm.sh: non-2xx answers: $codes" >&2; exit 1; }
