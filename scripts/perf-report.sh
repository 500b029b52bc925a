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
#   - go benchmarks Drain (internal/shm) and Pipeline (internal/agent), five
#     of each interleaved and pinned to one CPU (medians), ScrapeCompare96x8 (internal/metrics: the
#     agent's /metrics vs a plain client_golang registry holding the same
#     series) and WriterDurable (internal/audit),
#   - bin/agaobs-bench --json, scenarios idle,wake,20,10k,100k,1m,audit (`make bench-agent`'s
#     and a sparse producer, 20 events/s),
#   - OTLP on vs off (about 5 more minutes): the test collector (tests/otelcol,
#     `make otelcol`'s build) and agaobs-bench scenarios 100k,100k-otlp
#     interleaved PERF_OTLP_REPS times (default 2) over PERF_OTLP_DURATION
#     windows (default 60s), then 1m-otlp-slow and 1m-otlp-slow-uncapped
#     (PERF_DURATION each).
#   - the live view (about 2.5 more minutes): agaobs-bench live (8 producers ×
#     96 layers, agent CPU with no viewer and with 20, PERF_LIVE_PAIRS (default
#     3) interleaved PERF_LIVE_WINDOW windows (default 20s), bytes per viewer),
#     the first-load budget test (internal/live) and the browser test's
#     event → pixel measurement (tests/browser, headless Chromium).
#   - anomaly detection (about 7 more minutes): the labelled replay at full size
#     (agaobs-bench anomaly --json: 7 days, 8 producers × 96 layers), one
#     detector minute at 8 × 96 (BenchmarkAnomalyMinute), and the agent's CPU per
#     million events at 100 k events/s with the detector on and off,
#     PERF_ANOMALY_PAIRS (default 24) ABBA-interleaved PERF_ANOMALY_WINDOW windows
#     (default 5s) (agaobs-bench anomaly-cost).
# PERF_ONLY=otlp, PERF_ONLY=live or PERF_ONLY=anomaly runs only that part (and
# prints only its rows); PERF_ONLY=core everything but them.
# Other load on the machine skews every number: the table's header records
# the load average at the start and the end. A failing benchmark marks its
# rows and makes the script exit 1 after printing the table; a goal that is
# not met is marked ✘ but is not an error.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
PYTHON=${PYTHON:-python3}
DURATION=${PERF_DURATION:-10s} # agaobs-bench window per scenario
OTLP_DURATION=${PERF_OTLP_DURATION:-60s} # window of each OTLP on/off run (CPU per event wants >= 60 s)
OTLP_REPS=${PERF_OTLP_REPS:-2}           # off,on pairs, interleaved
LIVE_WINDOW=${PERF_LIVE_WINDOW:-20s}     # live view: one window without viewers, one with
LIVE_PAIRS=${PERF_LIVE_PAIRS:-3}
ANOMALY_WINDOW=${PERF_ANOMALY_WINDOW:-5s} # anomaly detection: one window on, one off (ABBA)
ANOMALY_PAIRS=${PERF_ANOMALY_PAIRS:-24}
ONLY=${PERF_ONLY:-}                      # "", otlp, live, anomaly or core
case $ONLY in "" | otlp | live | anomaly | core) ;; *) echo "perf-report: PERF_ONLY must be otlp, live, anomaly or core" >&2; exit 2 ;; esac

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
# The agent runs from an installed copy, as deploy/README.md installs it
# (install -m 0755) and as an image layer holds it: the Go linker writes
# its output through a shared mapping, and run straight from that file the
# agent maps ~4 MiB more of it (RSS 39.0 against 34.9-35.9 MiB at 1 M
# events/s, BENCHMARKS.md "Issue 19").
"$GO" build -o "$work/agaobs-agent.linked" ./cmd/agaobs-agent
install -m 0755 "$work/agaobs-agent.linked" "$work/agaobs-agent"
"$GO" build -o "$work/agaobs-bench" ./cmd/agaobs-bench
if [[ $ONLY == "" || $ONLY == otlp ]]; then
	# make otelcol's build: its own module, so not ./tests/otelcol from here.
	(cd tests/otelcol && "$GO" build -o "$work/agaobs-testcol" .)
fi

if [[ $ONLY == "" || $ONLY == core ]]; then

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

# The pipeline and its baseline, the bare drain, interleaved (five of each,
# alternating), so a drifting machine moves both. Both run pinned to the
# same CPU (the last one, where taskset is there): unpinned, a one-core
# benchmark migrating between this VM's vCPUs spread ±15 % run to run,
# pinned ±3 % (BENCHMARKS.md, "Issue 19, fourth round").
pin=()
if command -v taskset >/dev/null && [[ $(nproc) -gt 1 ]]; then
	pin=(taskset -c "$(($(nproc) - 1))")
fi
step "go bench Drain and Pipeline, interleaved${pin:+, pinned to CPU ${pin[2]}}"
"$GO" test -c -o "$work/shm.test" ./internal/shm
"$GO" test -c -o "$work/agent.test" ./internal/agent
: >"$work/drain.txt"
: >"$work/pipeline.txt"
: >"$work/floor.txt"
for i in 1 2 3 4 5; do
	run drain "$work/drain.$i.txt" "${pin[@]}" "$work/shm.test" -test.run '^$' -test.bench '^BenchmarkDrain$' -test.benchmem -test.benchtime 2s
	run pipeline "$work/pipeline.$i.txt" "${pin[@]}" "$work/agent.test" -test.run '^$' -test.bench '^BenchmarkPipeline$' -test.benchtime 4800000x
	# The floor: the same pipeline without the aggregating sinks, then
	# without the event log too (what the goal leaves them, same run).
	run pipeline-floor "$work/floor.$i.txt" "${pin[@]}" "$work/agent.test" -test.run '^$' -test.bench '^BenchmarkPipelineFloor$/^sinks=(log|none)$' -test.benchtime 2400000x
	cat "$work/drain.$i.txt" >>"$work/drain.txt"
	cat "$work/pipeline.$i.txt" >>"$work/pipeline.txt"
	cat "$work/floor.$i.txt" >>"$work/floor.txt"
done
step "go bench ScrapeCompare96x8 (agaobs vs a plain client_golang registry, same series)"
run scrape "$work/scrape.txt" "$GO" test -run '^$' -bench '^BenchmarkScrapeCompare96x8$' -benchtime 100x -count 3 ./internal/metrics
step "go bench WriterDurable"
run writer "$work/writer.txt" "$GO" test -run '^$' -bench '^BenchmarkWriterDurable$' -benchtime 300000x ./internal/audit
step "agaobs-bench idle,wake,20,10k,100k,1m,audit ($DURATION each)"
run agent-bench "$work/agent.jsonl" "$work/agaobs-bench" --agent "$work/agaobs-agent" --duration "$DURATION" \
	--scenarios idle,wake,20,10k,100k,1m,audit --json
fi

if [[ $ONLY == "" || $ONLY == live ]]; then
	step "agaobs-bench live: 8 producers × 96 layers, no viewer vs 20, $LIVE_PAIRS × $LIVE_WINDOW interleaved"
	run live-bench "$work/live.json" "$work/agaobs-bench" live --agent "$work/agaobs-agent" --window "$LIVE_WINDOW" \
		--pairs "$LIVE_PAIRS" --json
	step "go test internal/live TestFirstLoadBudget, tests/browser (event → pixel)"
	run live-budget "$work/live-budget.txt" "$GO" test -count=1 -run '^TestFirstLoadBudget$' -v ./internal/live
	run live-browser "$work/live-browser.txt" "$GO" test -count=1 -v ./tests/browser
fi

if [[ $ONLY == "" || $ONLY == anomaly ]]; then
	step "agaobs-bench anomaly (the labelled replay, full size), BenchmarkAnomalyMinute"
	run anomaly-replay "$work/anomaly.jsonl" "$work/agaobs-bench" anomaly --json
	run anomaly-minute "$work/anomaly-minute.txt" "$GO" test -run '^$' -bench '^BenchmarkAnomalyMinute$' -benchtime 200x ./internal/alerting
	step "agaobs-bench anomaly-cost: 100 k events/s, detector on vs off, $ANOMALY_PAIRS × $ANOMALY_WINDOW interleaved"
	run anomaly-cost "$work/anomaly-cost.json" "$work/agaobs-bench" anomaly-cost --agent "$work/agaobs-agent" \
		--window "$ANOMALY_WINDOW" --pairs "$ANOMALY_PAIRS" --json
fi

if [[ $ONLY == "" || $ONLY == otlp ]]; then
	pairs=$(for ((i = 0; i < OTLP_REPS; i++)); do printf '100k,100k-otlp,'; done)
	step "agaobs-bench OTLP off/on interleaved: ${pairs%,} ($OTLP_DURATION each)"
	run otlp-bench "$work/otlp.jsonl" "$work/agaobs-bench" --agent "$work/agaobs-agent" --collector "$work/agaobs-testcol" \
		--duration "$OTLP_DURATION" --scenarios "${pairs%,}" --json
	step "agaobs-bench 1m-otlp-slow,1m-otlp-slow-uncapped ($DURATION each)"
	run otlp-slow-bench "$work/otlp-slow.jsonl" "$work/agaobs-bench" --agent "$work/agaobs-agent" --collector "$work/agaobs-testcol" \
		--duration "$DURATION" --scenarios 1m-otlp-slow,1m-otlp-slow-uncapped --json
fi

step "report"
PERF_WORK=$work
PERF_LOAD_START=$load_start
PERF_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
PERF_WALL=$(($(date +%s) - start))
PERF_GO_VERSION=$("$GO" env GOVERSION)
PERF_ONLY=$ONLY
export PERF_WORK PERF_LOAD_START PERF_LOAD_END PERF_WALL PERF_GO_VERSION PERF_ONLY
"$PYTHON" - >"$report" <<'EOF'
import json, math, os, platform, re, subprocess

work = os.environ["PERF_WORK"]

def read(name):
    try:
        with open(os.path.join(work, name)) as f:
            return f.read()
    except OSError:
        return ""

def gobench_all(text, name, unit):
    """The values before `unit` on every line of benchmark `name` (any -N suffix)."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if f and re.fullmatch(re.escape(name) + r"(-\d+)?", f[0]):
            for i in range(1, len(f)):
                if f[i] == unit:
                    out.append(float(f[i - 1]))
    return out

def gobench(text, name, unit):
    """The median of gobench_all (None when the benchmark did not run)."""
    xs = sorted(gobench_all(text, name, unit))
    return xs[len(xs) // 2] if xs else None

rows = []
ONLY = os.environ.get("PERF_ONLY", "")
section = "core"  # rows of a section PERF_ONLY skipped are not printed
def row(what, goal, measured, ok, source, baseline="–", ratio="–"):
    if ONLY and section != ONLY:
        return
    verdict = "–" if ok is None else ("✔" if ok else "✘")
    rows.append(f"| {what} | {goal} | {measured} | {baseline} | {ratio} | {verdict} | {source} |")

FAILED = "**benchmark failed** (see stderr)"

# Every goal of the second round (issue 19) is a ratio to a baseline
# measured in this run; the absolute figures stand beside it.

def fmt_ratio(x, goal=None):
    return "–" if x is None or x != x else f"**{x:.2f} ×**" + (f" (goal {goal})" if goal else "")

# Python emitting-thread cost: the bare bus in the same process.
PYSRC = "`make bench-python` (emit_bench.py)"
try:
    py = json.loads(read("python.json").strip().splitlines()[-1])
    added, bare = py["added_ns"], py["bare_ns"]
    native = py.get("native", False)
    pure = f"; pure Python: client {py['pure_client_ns']:.0f} ns, +{py['pure_added_ns']:.0f} ns ({py['pure_added_ns'] / bare:.2f} × bare)" if "pure_added_ns" in py else ""
    row("Python: added cost per `forward` event on the emitting thread, client vs bare aga-core-shaped EventBus, agent draining"
        + (" (native fast path)" if native else " (**native fast path not loaded**)"),
        "≤ 0.3 µs added, added / bare ≤ 0.4",
        f"client {py['client_ns']:.0f} ns: **+{added:.0f} ns**, {py['drops']} drops (best of {py['repeat']} × {py['events']}, Python {py['python']}){pure}",
        native and added <= 300 and added / bare <= 0.4 and py["drops"] == 0, PYSRC,
        baseline=f"bare bus {bare:.0f} ns", ratio=f"added / bare **{added / bare:.2f}**")
except (ValueError, KeyError, IndexError, ZeroDivisionError):
    row("Python: added cost per `forward` event on the emitting thread", "≤ 0.3 µs added, added / bare ≤ 0.4", FAILED, False, PYSRC)

# Consumer drain (the pipeline's baseline).
DSRC = "`go test -bench '^BenchmarkDrain$' ./internal/shm`"
ns = gobench(read("drain.txt"), "BenchmarkDrain", "ns/op")
allocs = gobench(read("drain.txt"), "BenchmarkDrain", "allocs/op")
drain_eps = 1e9 / ns if ns else None
if ns:
    row("Consumer drain, 64-byte records from a pre-filled 4 MiB ring, one core (median of 5)", "≥ 50 M events/s, 0 allocs",
        f"**{1e3 / ns:.1f} M events/s** ({ns:.1f} ns/op, {allocs:.0f} allocs/op)", 1e3 / ns >= 50 and allocs == 0, DSRC)
else:
    row("Consumer drain, one core", "≥ 50 M events/s", FAILED, False, DSRC)

# Full pipeline vs the drain.
PSRC = "`go test -bench '^BenchmarkPipeline$' ./internal/agent`"
eps_all = gobench_all(read("pipeline.txt"), "BenchmarkPipeline", "events/s")
eps = gobench(read("pipeline.txt"), "BenchmarkPipeline", "events/s")
if eps and drain_eps:
    r = eps / drain_eps
    row("Full pipeline on one core (GOMAXPROCS=1): 8 pre-filled rings → consumer → decode → every sink of the default config "
        "(counter, audit store, metrics, event log to a file, alert engine with anomaly detection, producer health, live view; OTLP off), median of 5 interleaved with the drain, both pinned to one CPU",
        "≥ 10 M events/s, ≥ 0.15 × drain",
        f"**{eps / 1e6:.2f} M events/s** ({', '.join(f'{x / 1e6:.2f}' for x in eps_all)})", eps >= 10e6 and r >= 0.15, PSRC,
        baseline=f"drain {drain_eps / 1e6:.1f} M/s", ratio=fmt_ratio(r))
else:
    row("Full pipeline on one core, every default sink", "≥ 10 M events/s, ≥ 0.15 × drain", FAILED, False, PSRC)

# The pipeline's floor, same run: what is left when the sinks that fold
# every forward (metrics, alert engine, live view) are off, then the event
# log too. No goal: it shows what the pipeline goal leaves those sinks.
FSRC = "`go test -bench '^BenchmarkPipelineFloor$' ./internal/agent`"
f_log = gobench(read("floor.txt"), "BenchmarkPipelineFloor/sinks=log", "events/s")
f_none = gobench(read("floor.txt"), "BenchmarkPipelineFloor/sinks=none", "events/s")
if f_log and f_none and drain_eps:
    row("Pipeline floor, same setup (median of 5): without metrics, alert engine and live view; then without the event log too",
        "– (what the pipeline goal leaves the sinks)",
        f"event log on: **{f_log / 1e6:.2f} M events/s** ({1e9 / f_log:.0f} ns/event); consumer, counter, audit store and health only: "
        f"**{f_none / 1e6:.2f} M events/s** ({1e9 / f_none:.0f} ns/event)", None, FSRC,
        baseline=f"drain {drain_eps / 1e6:.1f} M/s", ratio=f"{f_log / drain_eps:.3f} ×; {f_none / drain_eps:.3f} ×")
else:
    row("Pipeline floor, without the aggregating sinks", "–", FAILED, None, FSRC)

# /metrics scrape vs client_golang's own registry, same series.
SSRC = "`go test -bench '^BenchmarkScrapeCompare96x8$' ./internal/metrics`"
for sub, what, limit in [("", "text", 5), ("_gzip", "gzip", 8)]:
    a_ = gobench(read("scrape.txt"), f"BenchmarkScrapeCompare96x8/agaobs{sub}", "ns/op")
    c_ = gobench(read("scrape.txt"), f"BenchmarkScrapeCompare96x8/client_golang{sub}", "ns/op")
    if a_ and c_:
        r = a_ / c_
        row(f"`/metrics` scrape at 96 layers × 8 producers, {what} (median of 3)", f"≤ {limit} ms, ≤ 0.5 × client_golang",
            f"**{a_ / 1e6:.2f} ms**", a_ <= limit * 1e6 and r <= 0.5, SSRC,
            baseline=f"plain client_golang registry, same series: {c_ / 1e6:.2f} ms", ratio=fmt_ratio(r))
    else:
        row(f"`/metrics` scrape at 96 layers × 8 producers, {what}", f"≤ {limit} ms, ≤ 0.5 × client_golang", FAILED, False, SSRC)

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

idle, k10, m1, wake = sc.get("idle"), sc.get("10k"), sc.get("1m"), sc.get("wake")
if idle and k10:
    p99 = num(k10, "event_to_metric_p99_ms")
    # The floor beside the baseline: a process that only wakes at the
    # poll interval, as the consumer must at this rate.
    floor = f"; bare Go process waking at the poll interval: {wake['cpu_pct']:.2f} %, {wake.get('context_switches_per_second', 0):.0f} context switches/s" if wake else ""
    row("Agent CPU at 10 k events/s (1 producer, default config), event → metric p99 (metrics sink's `agaobs_sink_event_latency_seconds`, bucket upper bound)",
        "≤ 1 % of a core, p99 ≤ 5 ms",
        f"**{k10['cpu_pct']:.2f} %** of a core ({k10['cpu_pct'] - idle['cpu_pct']:+.2f} points over idle), **p99 ≤ {p99:.1f} ms**, {k10['dropped']} dropped, {k10.get('context_switches_per_second', 0):.0f} context switches/s",
        k10["cpu_pct"] <= 1 and p99 <= 5 and k10["dropped"] == 0, BENCH + " `idle`,`10k`",
        baseline=f"idle agent {idle['cpu_pct']:.2f} %{floor}", ratio="–")
else:
    row("Agent CPU at 10 k events/s", "≤ 1 % of a core, p99 ≤ 5 ms", FAILED, False, BENCH + " `10k`")
if idle and m1:
    row("Agent RSS at 1 M events/s (1 producer, 4 MiB ring, default config), at the end of the window",
        "≤ 40 MiB",
        f"**{m1['rss_mib']:.1f} MiB** ({m1['rss_mib'] - idle['rss_mib']:+.1f} MiB over idle): anonymous {m1.get('rss_anon_mib', 0):.1f}, "
        f"file {m1.get('rss_file_mib', 0):.1f} (the binary), shared {m1.get('rss_shmem_mib', 0):.1f} (the ring)",
        m1["rss_mib"] <= 40, BENCH + " `idle`,`1m`",
        baseline=f"idle agent {idle['rss_mib']:.1f} MiB", ratio=fmt_ratio(m1["rss_mib"] / idle["rss_mib"]))
else:
    row("Agent RSS at 1 M events/s", "≤ 40 MiB", FAILED, False, BENCH + " `1m`")

a = sc.get("audit")
w_cpu = gobench(read("writer.txt"), "BenchmarkWriterDurable/bbolt", "cpu-ns/record")
if a and a.get("durable_per_second"):
    d = a["durable_per_second"]
    us = a["cpu_pct"] / 100 / d * 1e6
    row("Audit, whole agent: agent CPU per durable record (2 producers × 50 k audit records/s → bbolt on disk)",
        "≤ 3 µs per record; ≥ 100 k records/s durable, 0 dropped",
        f"**{us:.2f} µs** per record ({a['cpu_pct']:.0f} % of a core); **{d / 1e3:.1f} k records/s** durable, {a['dropped']} dropped, event → durable p99 ≤ {num(a, 'event_to_durable_p99_ms'):.0f} ms",
        us <= 3 and d >= 0.99e5 and a["dropped"] == 0, BENCH + " `audit`",
        baseline="writer alone: " + (f"{w_cpu / 1e3:.2f} µs per record" if w_cpu else "?"),
        ratio=fmt_ratio(us * 1e3 / w_cpu if w_cpu else None))
else:
    row("Audit, whole agent: agent CPU per durable record", "≤ 3 µs per record", FAILED, False, BENCH + " `audit`")
w = gobench(read("writer.txt"), "BenchmarkWriterDurable/bbolt", "records/s")
wp99 = gobench(read("writer.txt"), "BenchmarkWriterDurable/bbolt", "p99-ms")
WSRC = "`go test -bench '^BenchmarkWriterDurable$' ./internal/audit`"
if w:
    row("Audit writer alone (group commit into bbolt, fsync each)", "≥ 100 k records/s",
        f"**{w / 1e3:.0f} k records/s**, event → durable p99 ≤ {wp99 if wp99 is not None else float('nan'):.0f} ms"
        + (f", {w_cpu / 1e3:.2f} µs CPU per record" if w_cpu else ""),
        w >= 1e5, WSRC)
else:
    row("Audit writer alone", "≥ 100 k records/s", FAILED, False, WSRC)

if m1:
    load_s = m1.get("load_seconds") or float("nan")
    rate = m1["offered"] / load_s if load_s == load_s else float("nan")
    lost = m1["offered"] - m1["producer_dropped"] + m1["producers"] - m1["consumed"]  # +1 HELLO record per ring
    row("Sustained 1 M events/s (1 producer process, 4 MiB ring) into the agent with its default sinks",
        "1 M events/s, 0 drops",
        f"{m1['offered']:,} offered in {load_s:.0f} s (**{rate / 1e6:.2f} M/s**), {m1['consumed']:,} consumed, **{m1['dropped']} dropped**; agent {m1['cpu_pct']:.1f} % of a core",
        m1["dropped"] == 0 and m1["producer_dropped"] == 0 and lost <= 0 and rate >= 0.95e6, BENCH + " `1m`")
else:
    row("Sustained 1 M events/s", "1 M events/s, 0 drops", FAILED, False, BENCH + " `1m`")

if k10:
    others = ", ".join(f"{k}: ≤ {num(sc[k], 'event_to_metric_p99_ms'):.1f} ms" for k in ("100k", "1m") if k in sc)
    row("Event → metric p99 at 100 k and 1 M events/s; event → sink p50/p99 at 10 k (counter sink)", "≤ 5 ms",
        f"{others}; 10 k: event → sink {num(k10, 'event_to_sink_p50_ms'):.2f}/{num(k10, 'event_to_sink_p99_ms'):.2f} ms",
        all(num(sc[k], "event_to_metric_p99_ms") <= 5 for k in ("100k", "1m") if k in sc), BENCH + " `100k`,`1m`")

# Footprint.
for key, what in [("idle", "Footprint idle (2 producers connected, no events)"),
                  ("20", "Footprint at 20 events/s (1 producer: sparse, the consumer sleeps on the doorbell between records)"),
                  ("10k", "Footprint at 10 k events/s (1 producer)"),
                  ("100k", "Footprint at 100 k events/s (1 producer)"), ("1m", "Footprint at 1 M events/s (1 producer)")]:
    r = sc.get(key)
    if not r:
        row(what, "–", FAILED, False, BENCH + f" `{key}`")
        continue
    extra = f", {r['consumed']:,} consumed, {r['dropped']} dropped" if key != "idle" else ""
    if key == "20":
        extra += f", {r.get('context_switches_per_second', 0):.0f} context switches/s"
    ok = r["cpu_pct"] <= 1 if key == "idle" else None
    row(what, "≤ 1 % of a core" if key == "idle" else "–",
        f"**{r['cpu_pct']:.2f} %** CPU, **{r['rss_mib']:.1f} MiB** RSS{extra}, /metrics {r['scrape_ms']:.1f} ms", ok, BENCH + f" `{key}`")

# OTLP on vs off, interleaved in one agaobs-bench run.
section = "otlp"
runs = {}
for line in read("otlp.jsonl").splitlines() + read("otlp-slow.jsonl").splitlines():
    try:
        r = json.loads(line)
        runs.setdefault(r["scenario"], []).append(r)
    except ValueError:
        pass
OBENCH = "`agaobs-bench --collector`"

def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return float("nan") if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)

def spread(xs, fmt):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"

off, on = runs.get("100k", []), runs.get("100k-otlp", [])
if off and on:
    coff = [r["cpu_seconds_per_million_events"] for r in off]
    con = [r["cpu_seconds_per_million_events"] for r in on]
    ratio = med(con) / med(coff)
    win = min(r["window_seconds"] for r in off + on)
    row(f"OTLP on (all signals, default sampling) vs off at 100 k events/s: agent CPU-seconds per million events, {len(off)}× off/on interleaved, ≥ {win:.0f} s windows, median (range)",
        "≤ 1.10 × off",
        f"off {spread(coff, '{:.3f}')} s, on {spread(con, '{:.3f}')} s: **{ratio:.2f} ×** (agent {med([r['cpu_pct'] for r in off]):.1f} % → {med([r['cpu_pct'] for r in on]):.1f} % of a core; collector {med([num(r, 'collector_cpu_pct') for r in on]):.1f} %)",
        ratio <= 1.10, OBENCH + " `100k`,`100k-otlp`")
    roff = [r["rss_mib"] for r in off]
    ron = [r["rss_mib"] for r in on]
    d = med(ron) - med(roff)
    row("OTLP on vs off at 100 k events/s: agent RSS at the end of the window, median (range)", "≤ +20 MiB",
        f"off {spread(roff, '{:.1f}')} MiB, on {spread(ron, '{:.1f}')} MiB: **{d:+.1f} MiB** ({med(ron) / med(roff):.2f} ×; peak {med([r['rss_peak_mib'] for r in on]):.1f} vs {med([r['rss_peak_mib'] for r in off]):.1f} MiB)",
        d <= 20, OBENCH + " `100k`,`100k-otlp`")
    p99 = [num(r, "event_to_span_p99_ms") for r in on]
    row("Event → span received at the collector at 100 k events/s (receive time = the 10 ms poll of traces.jsonl that first sees the line)", "—",
        f"p50 {med([num(r, 'event_to_span_p50_ms') for r in on]):.0f} ms, **p99 {spread(p99, '{:.0f}')} ms** ({med([num(r, 'spans_per_second') for r in on]):.0f} spans/s)",
        None, OBENCH + " `100k-otlp`")
else:
    row("OTLP on vs off at 100 k events/s: CPU-seconds per million events", "≤ 1.10 × off", FAILED, False, OBENCH + " `100k`,`100k-otlp`")
    row("OTLP on vs off at 100 k events/s: RSS", "≤ +20 MiB", FAILED, False, OBENCH + " `100k`,`100k-otlp`")

for key, what in [("1m-otlp-slow", "default cap otlp_trace_max_spans_per_second 1000"),
                  ("1m-otlp-slow-uncapped", "--otlp-trace-max-spans-per-second 1000000")]:
    r = (runs.get(key) or [None])[-1]
    if not r:
        row(f"Spans/s at 1 M events/s, 1 % of forwards slow ({what})", "—", FAILED, False, OBENCH + f" `{key}`")
        continue
    firing = ", ".join(r.get("firing_alerts") or []) or "none"
    row(f"Spans/s received at the collector at 1 M events/s, 1 % of forwards slow (2 ms), {what}", "—",
        f"**{num(r, 'spans_per_second'):,.0f} spans/s**, {num(r, 'rate_limited_per_second'):,.0f}/s rate_limited, {num(r, 'otlp_dropped_other'):,.0f} other OTLP drops (queue_full, ...), "
        f"{r['dropped']:,} ring drops of {r['offered']:,}; event → span p50/p99 {num(r, 'event_to_span_p50_ms'):.0f}/**{num(r, 'event_to_span_p99_ms'):.0f} ms**; "
        f"agent {r['cpu_pct']:.0f} % of a core, {r['rss_mib']:.0f} MiB; alerts firing: {firing}",
        None, OBENCH + f" `{key}`")

# The live view.
section = "live"
LBENCH = "`agaobs-bench live`"
try:
    lv = json.loads(read("live.json").strip().splitlines()[-1])
    off, on = lv["cpu_no_viewer_pct"], lv["cpu_viewers_pct"]
    row(f"Live view: {lv['viewers']} viewers at {lv['producers']} producers × {lv['layers']} layers ({lv['rate_per_producer']:,} forwards/s each): extra agent CPU over the same agent with no viewer, {len(off)} × {lv['window_seconds']:.0f} s windows interleaved",
        "≤ 2 % of a core extra",
        f"no viewer {spread(off, '{:.2f}')} %, {lv['viewers']} viewers {spread(on, '{:.2f}')} %: **{lv['extra_cpu_pct']:+.2f} points**; {lv['viewers_dropped']:.0f} viewers dropped",
        lv["extra_cpu_pct"] <= 2 and lv["viewers_dropped"] == 0, LBENCH)
    row("Live view: bytes per viewer after the snapshot (on the wire, permessage-deflate)", "≤ 50 KB/s",
        f"**{lv['viewer_kb_per_s']:.1f} KB/s** (busiest {lv['viewer_kb_per_s_max']:.1f}; a frame is {lv['frame_raw_kb']:.1f} KB before compression)",
        lv["viewer_kb_per_s_max"] <= 50, LBENCH)
except (ValueError, KeyError, IndexError):
    row("Live view: extra agent CPU with 20 viewers", "≤ 2 % of a core extra", FAILED, False, LBENCH)
m = re.search(r"RESULT live first-load \| assets ([\d.]+) KB gzip \+ snapshot ([\d.]+) KB \(raw ([\d.]+) KB\) = ([\d.]+) KB", read("live-budget.txt"))
if m:
    row("Live view: first load, assets (gzip) + the snapshot with 15 min of history of 8 producers × 96 layers (permessage-deflate)",
        "≤ 300 KB", f"assets {m[1]} KB + snapshot {m[2]} KB (raw {m[3]} KB) = **{m[4]} KB**", float(m[4]) <= 300,
        "`go test -run TestFirstLoadBudget -v ./internal/live`")
else:
    row("Live view: first load", "≤ 300 KB", FAILED, False, "`go test -run TestFirstLoadBudget -v ./internal/live`")
m = re.search(r"RESULT live event → pixel p99 \| ([^|\n]*) \| p99 ([\d.]+) ms([^\n]*)", read("live-browser.txt"))
if m:
    row(f"Live view: event → pixel p99 in headless Chromium (a write at the start of a second to the value in the page's chart data; {m[1].strip()})", "≤ 1.5 s",
        f"**p99 {m[2]} ms**{m[3]}", float(m[2]) <= 1500, "`go test -v ./tests/browser`")
else:
    row("Live view: event → pixel p99", "≤ 1.5 s", FAILED, False, "`go test -v ./tests/browser`")
section = "core"

# Anomaly detection.
section = "anomaly"
ABENCH = "`agaobs-bench anomaly`"
try:
    lines = [json.loads(l) for l in read("anomaly.jsonl").splitlines() if l.strip()]
    kinds = {(l["side"], l["kind"]): l for l in lines if "kind" in l}
    summary = {l["side"]: l for l in lines if "kind" not in l}
    for (side, kind), k in kinds.items():
        if side != "detector":
            continue
        st = kinds.get(("static", kind), {})
        goal_s = 3 * 3600 if kind == "latency_drift" else 300
        kmed = k["median_delay_seconds"]
        hm = lambda v: "–" if v is None else (f"{v / 3600:.1f} h" if v >= 3600 else f"{v / 60:.0f} min")
        row(f"Anomaly replay, {kind} ({k['incidents']} incidents): detector recall and median delay; the seed's static rules beside it",
            f"recall ≥ 0.9, median ≤ {hm(goal_s)}",
            f"**recall {k['recall']:.2f}, median {hm(kmed)}** (p90 {hm(k['p90_delay_seconds'])}); static rules recall {st.get('recall', 0):.2f}, median {hm(st.get('median_delay_seconds'))}",
            k["recall"] >= 0.9 and kmed is not None and kmed <= goal_s, ABENCH)
    d, s_ = summary["detector"], summary["static"]
    row("Anomaly replay: false alerts per producer-day (7 days, 8 producers; benign daily peaks, rolling restarts, GC storms)", "≤ 0.5",
        f"**{d['false_alerts_per_producer_day']:.2f}** ({d['false_alerts']} over {d['producer_days']:.1f} producer-days); static rules {s_['false_alerts_per_producer_day']:.2f}; replay {d['elapsed_seconds']:.1f} s",
        d["false_alerts_per_producer_day"] <= 0.5 and d["elapsed_seconds"] <= 60, ABENCH)
except (ValueError, KeyError, IndexError):
    row("Anomaly replay", "recall ≥ 0.9, ≤ 0.5 false alerts per producer-day", FAILED, False, ABENCH)
ns = gobench(read("anomaly-minute.txt"), "BenchmarkAnomalyMinute", "ns/op")
if ns:
    row("Anomaly detector: one minute tick at 8 producers × 96 layers, every signal and the peer groups", "≤ 5 ms",
        f"**{ns / 1e6:.2f} ms**", ns <= 5e6, "`go test -bench '^BenchmarkAnomalyMinute$' ./internal/alerting`")
else:
    row("Anomaly detector: one minute tick", "≤ 5 ms", FAILED, False, "`go test -bench '^BenchmarkAnomalyMinute$' ./internal/alerting`")
try:
    ac = json.loads(read("anomaly-cost.json").strip().splitlines()[-1])
    row(f"Anomaly detection: agent CPU-seconds per million events at {ac['rate_total']:,} events/s ({ac['producers']} producers × {ac['layers']} layers), on vs off, {len(ac['on_cpu_seconds_per_million'])} × {ac['window_seconds']:.0f} s window pairs, ABBA",
        "≤ 1.05 × off",
        f"off {spread(ac['off_cpu_seconds_per_million'], '{:.3f}')}, on {spread(ac['on_cpu_seconds_per_million'], '{:.3f}')}: **{ac['ratio']:.3f} ×** (the median of the pairs' ratios, {min(ac['pair_ratios']):.2f}-{max(ac['pair_ratios']):.2f})",
        ac["ratio"] <= 1.05, "`agaobs-bench anomaly-cost`")
except (ValueError, KeyError, IndexError):
    row("Anomaly detection: agent CPU per million events, on vs off", "≤ 1.05 × off", FAILED, False, "`agaobs-bench anomaly-cost`")
section = "core"

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
print("| what | goal | measured | same-run baseline | ratio | | source |")
print("|---|---|---|---|---|---|---|")
print("\n".join(rows))
EOF
cat "$report"
echo "perf-report: written to $report ($(($(date +%s) - start)) s)" >&2
if ((${#failed[@]})); then
	echo "perf-report: failed: ${failed[*]}" >&2
	exit 1
fi
