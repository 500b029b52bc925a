#!/usr/bin/env python3
"""Print the rows tests/reliability reported (AGAOBS_RELIABILITY_REPORT, JSON
lines) as a markdown table for RELIABILITY.md: test, load, result and the
command that reruns the row's Go test."""
import json
import sys


def command(row):
    top = row.get("go_test", "").split("/")[0]
    env = "AGAOBS_E2E_FULL=1 " if row.get("full") == "full" else ""
    return "`%sgo test -count=1 -run '^%s$' ./tests/reliability`" % (env, top)


def main(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    print("| test | load | result | command |")
    print("|---|---|---|---|")
    for r in rows:
        cells = [r.get("test", ""), r.get("load", ""), r.get("result", ""), command(r)]
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".e2e/reliability.jsonl"))
