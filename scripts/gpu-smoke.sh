#!/usr/bin/env bash
# GPU smoke check for a machine with an NVIDIA GPU (no network needed): runs
# agaobs-agent for ~30 s beside a PyTorch matmul loop that streams through the
# Python client, then saves what the agent served.
#
#   scripts/gpu-smoke.sh [OUT_DIR]
#
# OUT_DIR defaults to $OUT (the device runner's output folder) or
# ./gpu-smoke-out. The agent binary is bin/agaobs-agent (build it on the
# development machine with `make build` and carry it), or $AGAOBS_AGENT.
# Saves: nvidia-smi.txt, metrics.txt (/metrics), health.json (/health),
# readyz.txt, agent.log, load.log, summary.txt (the GPU and producer series
# found). Exit 0 when the agent saw the GPU and the producer, 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$root/gpu-smoke-out}}
agent=${AGAOBS_AGENT:-$root/bin/agaobs-agent}
secs=${SMOKE_SECONDS:-30}
mkdir -p "$out"
ring_dir=$(mktemp -d /dev/shm/agaobs-smoke-XXXXXX)
work=$(mktemp -d)
trap 'kill "${ag:-}" "${load:-}" 2>/dev/null; rm -rf "$ring_dir" "$work"' EXIT

fetch() { # fetch URL FILE: python3 instead of curl, which may be missing
	python3 - "$1" "$2" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        body = r.read()
except urllib.error.HTTPError as e:
    body = e.read()
open(sys.argv[2], "wb").write(body)
PY
}

(nvidia-smi -L; nvidia-smi) > "$out/nvidia-smi.txt" 2>&1
"$agent" version > "$out/agent-version.txt" 2>&1
"$agent" run --ring-dir "$ring_dir" --state-path "$work/state.db" --audit-storage-path "$work/audit.db" \
	--prometheus-host 127.0.0.1 --prometheus-port 19090 --health-host 127.0.0.1 --health-port 18080 \
	--admin-listen-address 127.0.0.1:18081 --gpu-collect-interval 2s --log-enabled=false \
	--agent-log-level debug 2> "$out/agent.log" &
ag=$!
sleep 2
AGAOBS_RING_DIR="$ring_dir" python3 "$root/scripts/gpu_smoke_load.py" --seconds "$secs" > "$out/load.log" 2>&1 &
load=$!
sleep $((secs - 5))
fetch http://127.0.0.1:19090/metrics "$out/metrics.txt"
fetch http://127.0.0.1:18080/health "$out/health.json"
fetch "http://127.0.0.1:18080/readyz?verbose" "$out/readyz.txt"
wait "$load"
load_rc=$?
kill -TERM "$ag"
wait "$ag"

{
	echo "load exit: $load_rc"
	grep -E '^agaobs_gpu_(up|info|utilization_ratio|memory_used_bytes|temperature_celsius|power_watts)' "$out/metrics.txt"
	grep -E '^agaobs_producer_gpu_memory_bytes|^aga_producer_info|^aga_forward_total' "$out/metrics.txt"
} > "$out/summary.txt"
cat "$out/summary.txt"
grep -q '^agaobs_gpu_up 1' "$out/metrics.txt" && grep -q '^agaobs_producer_gpu_memory_bytes' "$out/metrics.txt" && [ "$load_rc" = 0 ]
