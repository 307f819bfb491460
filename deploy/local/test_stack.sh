#!/usr/bin/env bash
# Self-test of deploy/local/stack.sh: a throwaway stack on free ports in a temp dir.
# Usage: deploy/local/test_stack.sh    (exit 0 = pass)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="$HERE/stack.sh"
TANSU="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WXPULSE_STACK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/wxpulse-stack-test.XXXXXX")"
WXPULSE_KAFKA_PORT="$(free_port)"
WXPULSE_CH_PORT="$(free_port)"
while [ "$WXPULSE_CH_PORT" = "$WXPULSE_KAFKA_PORT" ]; do WXPULSE_CH_PORT="$(free_port)"; done
export WXPULSE_STACK_DIR WXPULSE_KAFKA_PORT WXPULSE_CH_PORT
unset WXPULSE_KAFKA_STORAGE # default: sqlite
BROKER="tcp://127.0.0.1:$WXPULSE_KAFKA_PORT"
CH="http://127.0.0.1:$WXPULSE_CH_PORT"
OTHER_DIR="$WXPULSE_STACK_DIR.other"

step() { echo "[test] $*"; }
fail() { echo "[test] FAIL: $*" >&2; exit 1; }
cleanup() {
  "$STACK" down --purge >/dev/null 2>&1 || true
  WXPULSE_STACK_DIR="$OTHER_DIR" "$STACK" down --purge >/dev/null 2>&1 || true
  rm -rf "$WXPULSE_STACK_DIR" "$OTHER_DIR"
}
trap cleanup EXIT

expect_status() {
  local want="$1" rc=0
  "$STACK" status >/dev/null || rc=$?
  [ "$rc" = "$want" ] || fail "status exit $rc, expected $want"
}
ch_query() { curl -sf --max-time 10 "$CH/" --data-binary "$1"; }
kafka_one() { timeout 20 "$TANSU" cat consume wx-selftest --broker "$BROKER" --max-wait-time-ms 500; }

step "stack on kafka :$WXPULSE_KAFKA_PORT, clickhouse :$WXPULSE_CH_PORT, dir $WXPULSE_STACK_DIR"
"$STACK" up
expect_status 0
"$STACK" up >/dev/null || fail "second 'up' is not idempotent"

step "env"
eval "$("$STACK" env)"
[ "$WXPULSE__KAFKA__BROKERS" = "127.0.0.1:$WXPULSE_KAFKA_PORT" ] || fail "env: brokers $WXPULSE__KAFKA__BROKERS"
[ "$WXPULSE__CLICKHOUSE__URL" = "$CH" ] || fail "env: url $WXPULSE__CLICKHOUSE__URL"

step "kafka answers (metadata, produce, fetch)"
timeout 20 "$TANSU" topic list --broker "$BROKER" | grep -q '^\[' || fail "kafka metadata"
timeout 20 "$TANSU" topic create wx-selftest --broker "$BROKER" --partitions 1 || fail "create topic"
echo '{"key":"k","value":"hello"}' | timeout 20 "$TANSU" cat produce wx-selftest --broker "$BROKER" || fail "produce"
kafka_one | grep -q hello || fail "consume"

step "clickhouse answers"
[ "$(ch_query 'SELECT 1')" = 1 ] || fail "SELECT 1"
ch_query 'CREATE TABLE selftest (x UInt32) ENGINE = MergeTree ORDER BY x' >/dev/null || fail "create table"
ch_query 'INSERT INTO selftest VALUES (42)' >/dev/null || fail "insert"

step "a second stack on the same ports fails clearly"
if WXPULSE_STACK_DIR="$OTHER_DIR" "$STACK" start kafka 2>"$OTHER_DIR.err"; then fail "kafka started on a taken port"; fi
grep -q 'already in use' "$OTHER_DIR.err" || fail "no 'already in use' message"
rm -f "$OTHER_DIR.err"

step "stop/start clickhouse keeps data"
"$STACK" stop clickhouse
expect_status 3
curl -sf --max-time 2 "$CH/ping" >/dev/null && fail "clickhouse still answers after stop"
"$STACK" start clickhouse
expect_status 0
[ "$(ch_query 'SELECT sum(x) FROM selftest')" = 42 ] || fail "clickhouse data lost across restart"

step "stop/start kafka keeps data"
"$STACK" stop kafka
expect_status 3
"$STACK" start kafka
expect_status 0
kafka_one | grep -q hello || fail "kafka data lost across restart"

step "down --purge"
pids="$(cat "$WXPULSE_STACK_DIR"/pids/*.pid)"
"$STACK" down --purge
for p in $pids; do
  if [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
    fail "pid $p still running after down"
  fi
done
[ ! -e "$WXPULSE_STACK_DIR" ] || fail "$WXPULSE_STACK_DIR still exists after --purge"
expect_status 3
python3 -c 'import socket,sys
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(p)))' \
  "$WXPULSE_KAFKA_PORT" "$WXPULSE_CH_PORT" || fail "ports still taken after down"

step "up --secure: SASL-only Kafka, HTTPS ClickHouse, env with the login and CA"
"$STACK" up --secure
expect_status 0
eval "$("$STACK" env)"
[ "$WXPULSE__CLICKHOUSE__URL" = "https://127.0.0.1:$WXPULSE_CH_PORT" ] || fail "secure env: url $WXPULSE__CLICKHOUSE__URL"
[ -s "$WXPULSE_KAFKA_SASL_PASSWORD_FILE" ] || fail "secure env: no password file"
grep -q SASL_PLAINTEXT "$WXPULSE_CONFIG" || fail "secure env: config without SASL"
[ "$(curl -sf --max-time 10 --cacert "$WXPULSE_STACK_DIR/secure/ca.pem" "https://127.0.0.1:$WXPULSE_CH_PORT/" \
  --data-binary 'SELECT 1')" = 1 ] || fail "https with the stack's CA"
curl -sf --max-time 5 "$CH/ping" >/dev/null && fail "clickhouse still answers plain http"
# Without a SASL login the broker answers no metadata request.
timeout 10 "$TANSU" topic list --broker "$BROKER" 2>/dev/null | grep -q '^\[' && fail "kafka answered without a login"
"$STACK" stop kafka && "$STACK" start kafka
expect_status 0
"$STACK" down --purge
[ ! -e "$WXPULSE_STACK_DIR" ] || fail "$WXPULSE_STACK_DIR still exists after --purge"
unset WXPULSE_CONFIG WXPULSE_KAFKA_SASL_USERNAME WXPULSE_KAFKA_SASL_PASSWORD_FILE

step "PASS"
