#!/usr/bin/env bash
# perf-compare.sh: the performance rows before and after a change, measured
# in one run on this machine, interleaved, as one Markdown table.
#
#   scripts/perf-compare.sh BASE [REPORT.md]     (or BASE=<ref> in the environment;
#                                                 REPORT.md defaults to .e2e/perf-compare.md)
#   make perf BASE=<ref>
#
# "base" is the git ref BASE, checked out with `git worktree add --detach` in a
# temporary directory (removed at exit); "new" is this working tree as it is,
# uncommitted changes included. Both trees' cmd/agaobs-agent and
# cmd/agaobs-bench are built and their ./internal/shm and ./internal/agent
# test binaries compiled once; then REPS times (default 3), base and new
# alternating which goes first, each tree runs
#   - BenchmarkDrain (internal/shm) with `make bench-go`'s flags (-benchtime 2s, -benchmem),
#   - BenchmarkPipeline (internal/agent), -benchtime 6000000x as perf-report.sh,
#   - agaobs-bench --json, scenarios idle,10k,1m (--duration PERF_DURATION, default 10s),
#     each tree's bench with its own agent.
# The table shows per metric each tree's median of the reps with its min–max,
# new/base and a verdict: "within spread" when one tree's median lies inside
# the other tree's min–max range, else "better" or "worse" (CPU, RSS, drops
# and allocs: lower is better; throughput: higher is better). With REPS=1 the
# ranges are single points, so every difference reads better or worse.
# A benchmark that fails to run makes the script exit 1 (after the table);
# a "worse" verdict does not.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}
PYTHON=${PYTHON:-python3}
DURATION=${PERF_DURATION:-10s} # agaobs-bench window per scenario
REPS=${REPS:-3}
SCENARIOS=idle,10k,1m

base_ref=${1:-${BASE:-}}
report=${2:-$root/.e2e/perf-compare.md}
if [[ -z $base_ref ]]; then
	echo "usage: scripts/perf-compare.sh BASE [REPORT.md]   (BASE: a git ref, e.g. HEAD~1)" >&2
	exit 2
fi
if ! [[ $REPS =~ ^[1-9][0-9]*$ ]]; then
	echo "perf-compare: REPS must be a positive integer, not '$REPS'" >&2
	exit 2
fi
base_sha=$(git rev-parse --verify --quiet "$base_ref^{commit}") || {
	echo "perf-compare: '$base_ref' is not a commit" >&2
	exit 2
}
mkdir -p "$(dirname "$report")"

work=$(mktemp -d "${TMPDIR:-/tmp}/agaobs-perf-compare-XXXXXX")
base_tree=$work/base-tree
worktree_added=""
cleanup() {
	if [[ -n $worktree_added ]]; then
		git -C "$root" worktree remove --force "$base_tree" >/dev/null 2>&1 || true
		git -C "$root" worktree prune >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
step() { echo "== $1 ($(($(date +%s) - start)) s)" >&2; }

step "worktree of $base_ref ($base_sha)"
git worktree add --quiet --detach "$base_tree" "$base_sha"
worktree_added=1

# Tree directory and binaries of each side.
declare -A tree=([base]=$base_tree [new]=$root)
for side in base new; do
	step "build $side (${tree[$side]})"
	mkdir -p "$work/$side" "$work/out"
	# (&&, not set -e: errexit is off inside a command list tested by ||)
	(cd "${tree[$side]}" &&
		"$GO" build -o "$work/$side/agaobs-agent" ./cmd/agaobs-agent &&
		"$GO" build -o "$work/$side/agaobs-bench" ./cmd/agaobs-bench &&
		"$GO" test -c -o "$work/$side/shm.test" ./internal/shm &&
		"$GO" test -c -o "$work/$side/agent.test" ./internal/agent) || {
		echo "perf-compare: building the $side tree (${tree[$side]}) failed" >&2
		exit 1
	}
done

failed=()
# run SIDE NAME REP DIR CMD...: in DIR, stdout to $work/out/SIDE.NAME.REP,
# stderr beside it (.err); a failure (or output without the expected line,
# checked later by the report) is remembered, not fatal, so the rest still runs.
run() {
	local side=$1 name=$2 rep=$3 dir=$4
	shift 4
	local out=$work/out/$side.$name.$rep
	if ! (cd "$dir" && "$@") >"$out" 2>"$out.err"; then
		echo "perf-compare: $name ($side, rep $rep) failed; stderr tail:" >&2
		tail -20 "$out.err" >&2
		if [[ -s $out ]]; then
			echo "-- stdout tail:" >&2
			tail -5 "$out" >&2
		fi
		failed+=("$name/$side/$rep")
	fi
}

bench_side() {
	local side=$1 rep=$2 t=${tree[$1]} bin=$work/$1
	step "rep $rep/$REPS $side: BenchmarkDrain"
	run "$side" drain "$rep" "$t/internal/shm" "$bin/shm.test" \
		-test.run '^$' -test.bench '^BenchmarkDrain$' -test.benchmem -test.benchtime 2s
	step "rep $rep/$REPS $side: BenchmarkPipeline"
	run "$side" pipeline "$rep" "$t/internal/agent" "$bin/agent.test" \
		-test.run '^$' -test.bench '^BenchmarkPipeline$' -test.benchtime 6000000x
	step "rep $rep/$REPS $side: agaobs-bench $SCENARIOS ($DURATION each)"
	run "$side" agent "$rep" "$t" "$bin/agaobs-bench" --agent "$bin/agaobs-agent" \
		--duration "$DURATION" --scenarios "$SCENARIOS" --json
}

for ((rep = 1; rep <= REPS; rep++)); do
	if ((rep % 2)); then order=(base new); else order=(new base); fi
	for side in "${order[@]}"; do bench_side "$side" "$rep"; done
done

step "report"
PERF_WORK=$work
PERF_REPS=$REPS
PERF_DURATION_USED=$DURATION
PERF_LOAD_START=$load_start
PERF_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
PERF_WALL=$(($(date +%s) - start))
PERF_BASE_LABEL=$(git describe --always "$base_sha")
[[ $PERF_BASE_LABEL == "$base_ref" ]] || PERF_BASE_LABEL="$base_ref = $PERF_BASE_LABEL"
PERF_NEW_LABEL="HEAD $(git describe --always --dirty)"
PERF_GO_VERSION=$("$GO" env GOVERSION)
export PERF_WORK PERF_REPS PERF_DURATION_USED PERF_LOAD_START PERF_LOAD_END PERF_WALL PERF_BASE_LABEL PERF_NEW_LABEL PERF_GO_VERSION
report_rc=0
"$PYTHON" - >"$report" <<'EOF' || report_rc=$?
import json, os, re, statistics, subprocess, sys

work = os.environ["PERF_WORK"]
reps = int(os.environ["PERF_REPS"])

def read(side, name, rep):
    try:
        with open(os.path.join(work, "out", f"{side}.{name}.{rep}")) as f:
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

def scenarios(text):
    sc = {}
    for line in text.splitlines():
        try:
            r = json.loads(line)
            sc[r["scenario"]] = r
        except (ValueError, KeyError, TypeError):
            pass
    return sc

# values[side][metric] = [one value per rep that produced it]
METRICS = [
    # key, label, higher is better, decimals
    ("drain", "Drain (internal/shm), M events/s", True, 1),
    ("drain_allocs", "Drain, allocs/op", False, 0),
    ("pipeline", "Pipeline, one core (internal/agent), M events/s", True, 2),
    ("idle_cpu", "idle: agent CPU, % of a core", False, 2),
    ("idle_rss", "idle: agent RSS, MiB", False, 1),
    ("10k_cpu", "10 k events/s: agent CPU, % of a core", False, 2),
    ("10k_rss", "10 k events/s: agent RSS, MiB", False, 1),
    ("1m_cpu", "1 M events/s: agent CPU, % of a core", False, 2),
    ("1m_rss", "1 M events/s: agent RSS, MiB", False, 1),
    ("1m_dropped", "1 M events/s: dropped", False, 0),
]
values = {s: {k: [] for k, *_ in METRICS} for s in ("base", "new")}
missing = []
for side in ("base", "new"):
    v = values[side]
    for rep in range(1, reps + 1):
        d = read(side, "drain", rep)
        ns, allocs = gobench(d, "BenchmarkDrain", "ns/op"), gobench(d, "BenchmarkDrain", "allocs/op")
        if ns:
            v["drain"].append(1e3 / ns)
        if allocs is not None:
            v["drain_allocs"].append(allocs)
        if not ns or allocs is None:
            missing.append(f"drain/{side}/{rep}")
        eps = gobench(read(side, "pipeline", rep), "BenchmarkPipeline", "events/s")
        if eps:
            v["pipeline"].append(eps / 1e6)
        else:
            missing.append(f"pipeline/{side}/{rep}")
        sc = scenarios(read(side, "agent", rep))
        for key, fields in (("idle", ("cpu", "rss")), ("10k", ("cpu", "rss")), ("1m", ("cpu", "rss", "dropped"))):
            r = sc.get(key)
            if r is None:
                missing.append(f"agaobs-bench {key}/{side}/{rep}")
                continue
            for f in fields:
                jf = {"cpu": "cpu_pct", "rss": "rss_mib", "dropped": "dropped"}[f]
                if r.get(jf) is not None:
                    v[f"{key}_{f}"].append(float(r[jf]))

def cell(vals, dec):
    if not vals:
        return "**failed**"
    med = statistics.median(vals)
    s = f"{med:,.{dec}f}"
    if len(vals) > 1:
        s += f" ({min(vals):,.{dec}f}–{max(vals):,.{dec}f})"
    if len(vals) < reps:
        s += f" [{len(vals)} of {reps} reps]"
    return s

rows = []
for key, label, higher, dec in METRICS:
    b, n = values["base"][key], values["new"][key]
    ratio = verdict = "–"
    if b and n:
        bm, nm = statistics.median(b), statistics.median(n)
        if bm != 0:
            ratio = f"{nm / bm:.3f}"
        elif nm == 0:
            ratio = "1.000"
        # Within spread: one tree's median lies inside the other's min–max.
        if min(b) <= nm <= max(b) or min(n) <= bm <= max(n):
            verdict = "within spread"
        else:
            verdict = "better" if (nm > bm) == higher else "worse"
    rows.append(f"| {label} | {cell(b, dec)} | {cell(n, dec)} | {ratio} | {verdict} |")

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
print("# agaobs performance: before and after\n")
print(f"{sh('date', '-u', '+%Y-%m-%d %H:%M UTC')}: base {os.environ['PERF_BASE_LABEL']}, new {os.environ['PERF_NEW_LABEL']}; "
      f"{os.cpu_count()} CPUs ({cpu}), {os.environ.get('PERF_GO_VERSION', '?')}. "
      f"Load average at start {os.environ['PERF_LOAD_START']}, at end {os.environ['PERF_LOAD_END']}; "
      f"wall time {os.environ['PERF_WALL']} s; REPS={reps} (interleaved, alternating which tree goes first), "
      f"PERF_DURATION={os.environ['PERF_DURATION_USED']}.\n")
print("| metric | base: median (min–max) | new: median (min–max) | new/base | verdict |")
print("|---|---|---|---|---|")
print("\n".join(rows))
if missing:
    print(f"\nNo result from: {', '.join(missing)}.")
sys.exit(1 if missing else 0)
EOF
cat "$report"
echo "perf-compare: written to $report ($(($(date +%s) - start)) s)" >&2
if ((${#failed[@]})); then
	echo "perf-compare: failed: ${failed[*]}" >&2
	exit 1
fi
if ((report_rc)); then
	echo "perf-compare: some benchmarks produced no result (see the end of the table)" >&2
	exit 1
fi
