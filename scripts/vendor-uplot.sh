#!/usr/bin/env bash
# Vendors uPlot (https://github.com/leeoniya/uPlot) for the live page from the
# npm registry at the pinned version below, after checking the tarball against
# the pinned npm `dist.integrity` (sha512). It writes exactly:
#   internal/live/ui/vendor/uPlot.iife.min.js
#   internal/live/ui/vendor/uPlot.min.css
#   internal/live/ui/vendor/LICENSE
#   internal/live/ui/vendor/VERSION   (version and integrity, one line)
#
#   scripts/vendor-uplot.sh           refresh the vendored files in place
#   scripts/vendor-uplot.sh --check   download again into a temporary directory
#                                     and fail when the committed files differ
#
# To move to another version: take `dist.integrity` of that version from
# https://registry.npmjs.org/uplot/<version> and change both lines together.
set -euo pipefail

version=1.6.32
integrity=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/internal/live/ui/vendor
files=(uPlot.iife.min.js uPlot.min.css LICENSE VERSION)

check=0
case "${1:-}" in
"") ;;
--check) check=1 ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Download and verify. The integrity string is base64 of the raw digest;
# turning it into hex lets plain sha512sum (coreutils) do the comparison.
url=https://registry.npmjs.org/uplot/-/uplot-$version.tgz
curl -fsSL --retry 3 -o "$tmp/uplot.tgz" "$url"
want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
got=$(sha512sum "$tmp/uplot.tgz" | cut -d' ' -f1)
if [ "$want" != "$got" ]; then
	echo "vendor-uplot: $url does not match the pinned integrity $integrity" >&2
	exit 1
fi

# Extract only the three files the page uses (npm tarballs are rooted at package/).
out=$tmp/out
mkdir -p "$out"
tar -xzf "$tmp/uplot.tgz" -C "$tmp" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$out/"
cp "$tmp/package/LICENSE" "$out/LICENSE"
printf 'uplot %s %s\n' "$version" "$integrity" >"$out/VERSION"

if [ "$check" = 1 ]; then
	for f in "${files[@]}"; do
		if ! cmp -s "$out/$f" "$dest/$f"; then
			echo "vendor-uplot: internal/live/ui/vendor/$f differs from uplot $version on the npm registry; run scripts/vendor-uplot.sh" >&2
			exit 1
		fi
	done
	echo "vendor-uplot: vendored uplot $version is current"
	exit 0
fi

mkdir -p "$dest"
for f in "${files[@]}"; do
	cp "$out/$f" "$dest/$f"
done
echo "vendor-uplot: wrote uplot $version to internal/live/ui/vendor"
