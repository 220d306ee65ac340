#!/bin/bash
# fetch-systemd.sh DIR: unpacks systemd 254 from Debian's bookworm-backports
# into DIR (about 18 MB) with a private apt configuration and dpkg -x.
# Nothing on the host changes: no package is installed, and apt's own
# lists and caches stay in a temporary directory. DIR is a cache: a
# complete one is left alone.
set -euo pipefail
dir=${1:?usage: fetch-systemd.sh DIR}
suite=${TFTEST_SYSTEMD_SUITE:-bookworm-backports}
[ -x "$dir/lib/systemd/systemd" ] && [ -f "$dir/.complete" ] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs"
echo "deb http://deb.debian.org/debian $suite main" >"$tmp/sources.list"
apt=(-q -o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update >/dev/null
version=$(apt-cache "${apt[@]}" madison systemd | awk -v s="$suite" '$0 ~ s {print $3; exit}')
[ -n "$version" ] || { echo "fetch-systemd: no systemd in $suite" >&2; exit 1; }
(cd "$tmp/debs" && apt-get "${apt[@]}" download "systemd=$version" "libsystemd-shared=$version" >/dev/null)
rm -rf "$dir.new"
mkdir -p "$dir.new"
for deb in "$tmp"/debs/*.deb; do dpkg -x "$deb" "$dir.new"; done
echo "$version" >"$dir.new/.complete"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "fetch-systemd: systemd $version in $dir"
