#!/usr/bin/env python3
"""Print the rows tests/reliability reported (AGAOBS_RELIABILITY_REPORT, JSON
lines) as the markdown table of RELIABILITY.md."""
import json
import sys


def main(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    print("| test | load | faults injected / result | size | go test |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [r.get(k, "") for k in ("test", "load", "result", "full", "go_test")]
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".e2e/reliability.jsonl"))
