#!/usr/bin/env bash
# Extracts the Prometheus server and promtool from Debian's `prometheus` package into
# deploy/ops/.tools (gitignored) and prints the path of the `prometheus` binary.
#
# Same method as check-deploy.sh: `apt-get download` + `dpkg-deb -x`, never `apt-get install`
# (the package's postinst starts and enables a daemon on :9090). Idempotent: when the
# binary is already there it only prints its path. Used by the end-to-end test
# tests/e2e/prometheus.rs, which runs the server against the real services.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/deploy/ops/.tools"
PROMETHEUS="$TOOLS/prometheus"

if [[ -x "$PROMETHEUS" ]]; then
  echo "$PROMETHEUS"
  exit 0
fi

die() {
  echo "install-prometheus: $*" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || die "no apt-get to fetch Debian's prometheus package"
if ! apt-cache show prometheus >/dev/null 2>&1; then
  apt-get update -qq >/dev/null || die "apt-get update failed"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download prometheus >/dev/null 2>&1) || die "apt-get download prometheus failed"
dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/pkg" || die "dpkg-deb -x failed"
mkdir -p "$TOOLS"
[[ -x "$TOOLS/promtool" ]] || cp "$WORK/pkg/usr/bin/promtool" "$TOOLS/promtool"
# Copy then rename, so a concurrent caller never sees a half-written binary.
cp "$WORK/pkg/usr/bin/prometheus" "$PROMETHEUS.tmp.$$"
mv "$PROMETHEUS.tmp.$$" "$PROMETHEUS"
echo "$PROMETHEUS"
