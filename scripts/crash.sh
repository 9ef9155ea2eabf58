#!/usr/bin/env bash
# Kills the server with SIGKILL at random moments, many times over, and checks that no
# budget was exceeded, no accepted alert was lost and the audit chain verifies. The
# test command runs a few rounds; this runs hundreds.
#
#   scripts/crash.sh [ROUNDS]    (default 300)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-300}
export CI=${CI:-true}
export REMEDIATOR_CRASH_ROUNDS=$rounds
# each round takes about a second
exec go test -count=1 -timeout "$((rounds * 5 + 120))s" -run '^TestCrashesChangeNoDecision$' -v ./cmd/remediator
