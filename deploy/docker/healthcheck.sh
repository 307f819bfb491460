#!/bin/bash
# Container healthcheck without curl in the image: GET a path on the metrics listener and
# succeed on HTTP 200. Used by docker-compose (`wxpulse-healthcheck /healthz`).
#   wxpulse-healthcheck [PATH] [PORT]
# PORT defaults to the port of WXPULSE__METRICS__LISTEN, else 9464.
set -euo pipefail

path="${1:-/healthz}"
listen="${WXPULSE__METRICS__LISTEN:-0.0.0.0:9464}"
port="${2:-${listen##*:}}"

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r _ status _ <&3
exec 3<&-
[[ "$status" == "200" ]]
