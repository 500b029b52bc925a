#!/usr/bin/env bash
# perf-report.sh: the benchmarks behind agaobs's performance goals, run in
# one go on this machine, summarised as one Markdown table (measured vs
# goal). Numbers from separate runs on different machines or different
# days do not compare; this puts them side by side from one run.
#
#   scripts/perf-report.sh [REPORT.md]     (default: perf-report.md in a new temp dir)
#
# It runs (about 3 minutes on the 2-vCPU development VM):
#   - the Python emit cost with the agent draining the ring (`make bench-python`'s
#     command, on free loopback ports),
#   - go benchmarks Drain (internal/shm), Pipeline (internal/agent) and
#     WriterDurable (internal/audit) with `make bench-go`'s flags,
#   - bin/agaobs-bench --json, scenarios idle,10k,100k,1m,audit (`make bench-agent`).
# Other load on the machine skews every number: the table's header records
# the load average at the start and the end. A failing benchmark marks its
# rows and makes the script exit 1 after printing the table; a goal that is
# not met is marked ✘ but is not an error.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
PYTHON=${PYTHON:-python3}
DURATION=${PERF_DURATION:-10s} # agaobs-bench window per scenario

report=${1:-}
if [[ -z $report ]]; then
	report=$(mktemp -d "${TMPDIR:-/tmp}/agaobs-perf-XXXXXX")/perf-report.md
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/agaobs-perf-work-XXXXXX")
pyring=""
agent_pid=""
cleanup() {
	if [[ -n $agent_pid ]]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
	[[ -n $pyring ]] && rm -rf "$pyring"
	rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
step() { echo "== $1 ($(($(date +%s) - start)) s)" >&2; }
failed=()

# run NAME OUTFILE CMD...: stdout to OUTFILE, stderr to OUTFILE.err; a
# failure is remembered, not fatal, so the table still shows the rest.
run() {
	local name=$1 out=$2
	shift 2
	if ! "$@" >"$out" 2>"$out.err"; then
		echo "perf-report: $name failed:" >&2
		tail -20 "$out.err" >&2
		failed+=("$name")
	fi
}

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "build"
"$GO" build -o "$work/agaobs-agent" ./cmd/agaobs-agent
"$GO" build -o "$work/agaobs-bench" ./cmd/agaobs-bench

# Python: make bench-python's command. The agent gets loopback ports and a
# temporary audit store so it neither clashes with another agent nor leaves
# aga_audit.db in the working directory.
step "python emit cost (agent draining)"
pyring=$(mktemp -d /dev/shm/agaobs-pybench-XXXX)
"$work/agaobs-agent" run --ring-dir "$pyring" --state-path '' --admin-listen-address '' --agent-log-level error \
	--prometheus-host 127.0.0.1 --prometheus-port "$(free_port)" --health-host 127.0.0.1 --health-port "$(free_port)" \
	--audit-storage-path "$pyring/aga_audit.db" 2>"$work/python-agent.err" &
agent_pid=$!
sleep 0.5
run python "$work/python.json" env PYTHONPATH=clients/python AGAOBS_RING_DIR="$pyring" \
	"$PYTHON" clients/python/bench/emit_bench.py --events 200000 --ring-dir "$pyring"
kill "$agent_pid" 2>/dev/null || true
wait "$agent_pid" || true
agent_pid=""
rm -rf "$pyring"
pyring=""

step "go bench Drain"
run drain "$work/drain.txt" "$GO" test -run '^$' -bench '^BenchmarkDrain$' -benchmem -benchtime 2s ./internal/shm
step "go bench Pipeline"
run pipeline "$work/pipeline.txt" "$GO" test -run '^$' -bench '^BenchmarkPipeline$' -benchtime 6000000x ./internal/agent
step "go bench WriterDurable"
run writer "$work/writer.txt" "$GO" test -run '^$' -bench '^BenchmarkWriterDurable$' -benchtime 300000x ./internal/audit
step "agaobs-bench idle,10k,100k,1m,audit ($DURATION each)"
run agent-bench "$work/agent.jsonl" "$work/agaobs-bench" --agent "$work/agaobs-agent" --duration "$DURATION" \
	--scenarios idle,10k,100k,1m,audit --json

step "report"
PERF_WORK=$work
PERF_LOAD_START=$load_start
PERF_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
PERF_WALL=$(($(date +%s) - start))
PERF_GO_VERSION=$("$GO" env GOVERSION)
export PERF_WORK PERF_LOAD_START PERF_LOAD_END PERF_WALL PERF_GO_VERSION
"$PYTHON" - >"$report" <<'EOF'
import json, math, os, platform, re, subprocess

work = os.environ["PERF_WORK"]

def read(name):
    try:
        with open(os.path.join(work, name)) as f:
            return f.read()
    except OSError:
        return ""

def gobench(text, name, unit):
    """The value before `unit` on the line of benchmark `name` (any -N suffix)."""
    for line in text.splitlines():
        f = line.split()
        if f and re.fullmatch(re.escape(name) + r"(-\d+)?", f[0]):
            for i in range(1, len(f)):
                if f[i] == unit:
                    return float(f[i - 1])
    return None

rows = []
def row(what, goal, measured, ok, source):
    verdict = "–" if ok is None else ("✔" if ok else "✘")
    rows.append(f"| {what} | {goal} | {measured} | {verdict} | {source} |")

FAILED = "**benchmark failed** (see stderr)"

# Python emitting-thread cost.
try:
    py = json.loads(read("python.json").strip().splitlines()[-1])
    added = py["added_ns"]
    row("Python: added cost per `forward` event on the emitting thread (client vs bare stand-in EventBus), agent draining",
        "≤ 1 µs added",
        f"bare {py['bare_ns']:.0f} ns, client {py['client_ns']:.0f} ns: **+{added:.0f} ns**, {py['drops']} drops (best of {py['repeat']} × {py['events']}, Python {py['python']})",
        added <= 1000 and py["drops"] == 0, "`make bench-python`")
except (ValueError, KeyError, IndexError):
    row("Python: added cost per `forward` event on the emitting thread", "≤ 1 µs added", FAILED, False, "`make bench-python`")

# Consumer drain.
ns = gobench(read("drain.txt"), "BenchmarkDrain", "ns/op")
allocs = gobench(read("drain.txt"), "BenchmarkDrain", "allocs/op")
if ns:
    row("Consumer drain, 64-byte records from a pre-filled 4 MiB ring, one core", "≥ 50 M events/s, 0 allocs",
        f"**{1e3 / ns:.1f} M events/s** ({ns:.1f} ns/op, {allocs:.0f} allocs/op)", 1e3 / ns >= 50 and allocs == 0,
        "`go test -bench '^BenchmarkDrain$' ./internal/shm`")
else:
    row("Consumer drain, one core", "≥ 50 M events/s", FAILED, False, "`go test -bench '^BenchmarkDrain$' ./internal/shm`")

# Full pipeline.
eps = gobench(read("pipeline.txt"), "BenchmarkPipeline", "events/s")
if eps:
    row("Full pipeline on one core (GOMAXPROCS=1): 8 rings → consumer → decode → metrics + event log + alert engine + counter",
        "≥ 5 M events/s", f"**{eps / 1e6:.2f} M events/s**", eps >= 5e6, "`go test -bench '^BenchmarkPipeline$' ./internal/agent`")
else:
    row("Full pipeline on one core", "≥ 5 M events/s", FAILED, False, "`go test -bench '^BenchmarkPipeline$' ./internal/agent`")

# agaobs-bench scenarios.
sc = {}
for line in read("agent.jsonl").splitlines():
    try:
        r = json.loads(line)
        sc[r["scenario"]] = r
    except ValueError:
        pass
BENCH = "`agaobs-bench --json`"

def num(r, k):
    v = r.get(k)
    return float("nan") if v is None else v

m = sc.get("1m")
if m:
    load_s = m.get("load_seconds") or float("nan")
    rate = m["offered"] / load_s if load_s == load_s else float("nan")
    lost = m["offered"] - m["producer_dropped"] + m["producers"] - m["consumed"]  # +1 HELLO record per ring
    row("Sustained 1 M events/s (1 producer process, 4 MiB ring) into the agent with its default sinks",
        "1 M events/s, 0 drops",
        f"{m['offered']:,} offered in {load_s:.0f} s (**{rate / 1e6:.2f} M/s**), {m['consumed']:,} consumed, **{m['dropped']} dropped**; agent {m['cpu_pct']:.1f} % of a core, {m['rss_mib']:.1f} MiB",
        m["dropped"] == 0 and m["producer_dropped"] == 0 and lost <= 0 and rate >= 0.95e6, BENCH + " `1m`")
else:
    row("Sustained 1 M events/s", "1 M events/s, 0 drops", FAILED, False, BENCH + " `1m`")

k10 = sc.get("10k")
if k10:
    p99 = num(k10, "event_to_metric_p99_ms")
    others = ", ".join(f"{k}: ≤ {num(sc[k], 'event_to_metric_p99_ms'):.1f} ms" for k in ("100k", "1m") if k in sc)
    row("Event → metric p99 at 10 k events/s (metrics sink's `agaobs_sink_event_latency_seconds`, bucket upper bound)",
        "≤ 5 ms", f"**≤ {p99:.1f} ms** (event → sink p50/p99 {num(k10, 'event_to_sink_p50_ms'):.2f}/{num(k10, 'event_to_sink_p99_ms'):.2f} ms; {others})",
        p99 <= 5, BENCH + " `10k`")
else:
    row("Event → metric p99 at 10 k events/s", "≤ 5 ms", FAILED, False, BENCH + " `10k`")

a = sc.get("audit")
if a:
    d = num(a, "durable_per_second")
    row("Audit durable, whole agent: 2 producers × 50 k audit records/s → bbolt on disk",
        "≥ 100 k records/s",
        f"**{d / 1e3:.1f} k records/s** durable, {a['dropped']} dropped, event → durable p99 ≤ {num(a, 'event_to_durable_p99_ms'):.0f} ms; agent {a['cpu_pct']:.0f} % of a core",
        d >= 0.99e5 and a["dropped"] == 0, BENCH + " `audit`")
else:
    row("Audit durable, whole agent", "≥ 100 k records/s", FAILED, False, BENCH + " `audit`")
w = gobench(read("writer.txt"), "BenchmarkWriterDurable/bbolt", "records/s")
wp99 = gobench(read("writer.txt"), "BenchmarkWriterDurable/bbolt", "p99-ms")
if w:
    row("Audit writer alone (group commit into bbolt, fsync each)", "≥ 100 k records/s",
        f"**{w / 1e3:.0f} k records/s**, event → durable p99 ≤ {wp99 if wp99 is not None else float('nan'):.0f} ms",
        w >= 1e5, "`go test -bench '^BenchmarkWriterDurable$' ./internal/audit`")
else:
    row("Audit writer alone", "≥ 100 k records/s", FAILED, False, "`go test -bench '^BenchmarkWriterDurable$' ./internal/audit`")

# Footprint.
for key, what, goal, check in [
    ("idle", "Footprint idle (2 producers connected, no events)", "≤ 1 % of a core", lambda r: r["cpu_pct"] <= 1),
    ("10k", "Footprint at 10 k events/s (1 producer)", "≤ 2 % of a core, RSS ≤ 40 MiB", lambda r: r["cpu_pct"] <= 2 and r["rss_mib"] <= 40),
    ("100k", "Footprint at 100 k events/s (1 producer)", "–", None),
    ("1m", "Footprint at 1 M events/s (1 producer)", "–", None),
]:
    r = sc.get(key)
    if not r:
        row(what, goal, FAILED, False, BENCH + f" `{key}`")
        continue
    extra = f", {r['consumed']:,} consumed, {r['dropped']} dropped" if key != "idle" else ""
    row(what, goal, f"**{r['cpu_pct']:.2f} %** CPU, **{r['rss_mib']:.1f} MiB** RSS{extra}, /metrics {r['scrape_ms']:.1f} ms",
        check(r) if check else None, BENCH + f" `{key}`")

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"

cpu = "?"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
print(f"# agaobs performance report\n")
print(f"{sh('date', '-u', '+%Y-%m-%d %H:%M UTC')}, commit {sh('git', 'describe', '--always', '--dirty')}: "
      f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, {os.environ.get('PERF_GO_VERSION', '?')}, "
      f"Python {platform.python_version()}. Load average at start {os.environ['PERF_LOAD_START']}, "
      f"at end {os.environ['PERF_LOAD_END']}; wall time {os.environ['PERF_WALL']} s.\n")
print("| what | goal | measured | | source |")
print("|---|---|---|---|---|")
print("\n".join(rows))
EOF
cat "$report"
echo "perf-report: written to $report ($(($(date +%s) - start)) s)" >&2
if ((${#failed[@]})); then
	echo "perf-report: failed: ${failed[*]}" >&2
	exit 1
fi
