#!/usr/bin/env bash
# Rebuilds the BPF object and its Go bindings into a temporary directory with
# the exact command of internal/probes/gen.go and compares them with the
# committed files. Skips (exit 0) when clang-14 is not installed, unless
# AGAOBS_TEST_REQUIRE_BPF=1. `make bpf` regenerates in place.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v clang-14 >/dev/null || ! command -v llvm-strip-14 >/dev/null; then
	if [ "${AGAOBS_TEST_REQUIRE_BPF:-}" = 1 ]; then
		echo "bpf-check: clang-14 and llvm-strip-14 are required (AGAOBS_TEST_REQUIRE_BPF=1)" >&2
		exit 1
	fi
	echo "bpf-check: clang-14 not installed, committed BPF objects not rebuilt"
	exit 0
fi
args=$(sed -n 's|^//go:generate go tool bpf2go ||p' "$root/internal/probes/gen.go")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root/internal/probes"
eval go tool bpf2go -output-dir "$tmp" $args >/dev/null
for f in probes_bpfel.o probes_bpfel.go; do
	if ! cmp -s "$f" "$tmp/$f"; then
		echo "bpf-check: internal/probes/$f is not what bpf/ builds to with $(clang-14 --version | head -1); run make bpf" >&2
		exit 1
	fi
done
echo "bpf-check: committed BPF object and bindings are current"
