#!/usr/bin/env bash
# Runs the seed package's own test suite (tests/test_observability of the
# public repository LucasMa2025/aga-plugin-system) against this repository's
# Python client, as a user migrating from the seed would, and prints passed
# and failed per module and in total (docs/seed-compatibility.md §12).
#
#   scripts/seed-tests.sh PATH     PATH: a checkout of that repository
#
# Its files are not ours to commit: the suite is copied into a temporary
# directory and run there with pytest (Debian: apt-get install python3-pytest),
# the client (clients/python) first on the path, then aga-core from PATH. The
# suite imports aga.instrumentation (the EventBus); aga-core's package
# __init__ imports torch, so without torch only aga/instrumentation is put on
# the path (a torch-free package), and the 3 health tests that build torch
# tensors fail at their own `import torch`.
#
# The rings go to a temporary directory, and unless AGAOBS_AGENT_URL and
# AGAOBS_HEALTH_URL are set they point at a closed local port, so the
# numbers do not depend on an agent that happens to run on this machine.
# Environment: PYTHON (default: the first of python3, /usr/bin/python3 that
# has pytest); SEED_TESTS_KEEP=1 keeps the temporary directory.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1/tests/test_observability" ]; then
	echo "usage: $0 PATH   (PATH: a checkout of LucasMa2025/aga-plugin-system, with tests/test_observability)" >&2
	exit 2
fi
seed=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)

py=""
for c in ${PYTHON:-} python3 /usr/bin/python3; do
	if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import pytest' >/dev/null 2>&1; then
		py=$c
		break
	fi
done
if [ -z "$py" ]; then
	echo "$0: no python3 with pytest found (Debian: apt-get install python3-pytest; or set PYTHON)" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agaobs-seed-tests-XXXXXX")
if [ "${SEED_TESTS_KEEP:-}" = 1 ]; then
	echo "keeping $tmp"
else
	trap 'rm -rf "$tmp"' EXIT
fi
mkdir -p "$tmp/run/tests" "$tmp/lib" "$tmp/rings"
cp -r "$seed/tests/test_observability" "$tmp/run/tests/"
cp "$seed/tests/__init__.py" "$tmp/run/tests/" 2>/dev/null || : >"$tmp/run/tests/__init__.py"

# aga-core: whole with torch; else its torch-free aga.instrumentation only.
if "$py" -c 'import torch' >/dev/null 2>&1; then
	cp -r "$seed/aga" "$tmp/lib/"
	core="aga-core from $seed/aga"
else
	mkdir -p "$tmp/lib/aga"
	: >"$tmp/lib/aga/__init__.py"
	cp -r "$seed/aga/instrumentation" "$tmp/lib/aga/"
	core="aga.instrumentation only from $seed/aga (no torch for $py)"
fi

export PYTHONPATH="$repo/clients/python:$tmp/lib"
export AGAOBS_RING_DIR="$tmp/rings"
export AGAOBS_AGENT_URL="${AGAOBS_AGENT_URL:-http://127.0.0.1:9}"
export AGAOBS_HEALTH_URL="${AGAOBS_HEALTH_URL:-http://127.0.0.1:9/health}"
export PYTHONDONTWRITEBYTECODE=1

echo "seed suite: $seed/tests/test_observability ($(git -C "$seed" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "client:     $repo/clients/python;  $core"
echo "python:     $py ($("$py" -c 'import platform; print(platform.python_version())'), pytest $("$py" -c 'import pytest; print(pytest.__version__)'))"
echo "agent:      $AGAOBS_AGENT_URL (health $AGAOBS_HEALTH_URL)"
echo

set +e
(cd "$tmp/run" && "$py" -m pytest -p no:cacheprovider -o addopts= -q -rfE --tb=line \
	--continue-on-collection-errors --junitxml="$tmp/junit.xml" tests/test_observability) >"$tmp/pytest.log" 2>&1
rc=$?
set -e
if [ ! -s "$tmp/junit.xml" ]; then
	cat "$tmp/pytest.log"
	echo "$0: pytest wrote no report (exit $rc)" >&2
	exit 2
fi
sed -n '/short test summary info/,$p' "$tmp/pytest.log"
echo

"$py" - "$tmp/junit.xml" "$tmp/run/tests/test_observability" <<'EOF'
import collections
import os
import re
import sys
import xml.etree.ElementTree as ET

report, suite = sys.argv[1], sys.argv[2]
count = collections.OrderedDict()
for f in sorted(os.listdir(suite)):
    if f.startswith("test_") and f.endswith(".py"):
        src = open(os.path.join(suite, f), encoding="utf-8").read()
        count[f[:-3]] = [0, 0, len(re.findall(r"^\s+def test_", src, re.M)), ""]
for tc in ET.parse(report).getroot().iter("testcase"):
    cls, name = tc.get("classname", ""), tc.get("name", "")
    parts = (cls or name).split(".")
    mod = next((p for p in parts if p in count), None)
    if mod is None:
        continue
    bad = tc.find("failure") is not None or tc.find("error") is not None
    if not cls:  # a collection error: the module did not import
        count[mod][3] = "collection error"
        continue
    if tc.find("skipped") is not None:
        continue
    count[mod][1 if bad else 0] += 1
print(f"{'module':<22} {'passed':>6} {'failed':>6} {'tests':>6}")
tp = tf = tt = 0
for mod, (p, fl, n, note) in count.items():
    if note:
        fl = n - p
    print(f"{mod:<22} {p:>6} {fl:>6} {n:>6}  {note}".rstrip())
    tp, tf, tt = tp + p, tf + fl, tt + n
print(f"{'total':<22} {tp:>6} {tf:>6} {tt:>6}")
EOF
