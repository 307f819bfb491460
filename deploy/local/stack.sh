#!/usr/bin/env bash
# Local wxpulse stack: Tansu (Kafka protocol) + chdb-http (ClickHouse HTTP), no Docker.
#
#   deploy/local/stack.sh install|up [--secure]|down [--purge]|status|env
#   deploy/local/stack.sh start|stop kafka|clickhouse
#
# Settings (environment):
#   WXPULSE_KAFKA_PORT=9092  WXPULSE_CH_PORT=8123
#   WXPULSE_STACK_DIR=<repo>/deploy/local/.data  WXPULSE_KAFKA_STORAGE=sqlite|memory|postgres
#   (postgres: a private PostgreSQL under the stack dir, see stack_postgres.sh)
#   WXPULSE_STACK_TIMEOUT=60 (seconds to wait for a component to answer)
#   WXPULSE_STACK_SECURE=1 (as up --secure: SASL/SCRAM Kafka, HTTPS ClickHouse)
# See deploy/local/README.md.
set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"

KAFKA_PORT="${WXPULSE_KAFKA_PORT:-9092}"
CH_PORT="${WXPULSE_CH_PORT:-8123}"
STACK_DIR="${WXPULSE_STACK_DIR:-$LOCAL_DIR/.data}"
KAFKA_STORAGE="${WXPULSE_KAFKA_STORAGE:-sqlite}"
TIMEOUT="${WXPULSE_STACK_TIMEOUT:-60}"
SECURE="${WXPULSE_STACK_SECURE:-0}"
# Secure stacks: the SCRAM user every client logs in as.
SASL_USER="wxpulse"

TANSU_VERSION="0.6.0"
TANSU="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
TANSU_FEATURES="dynostore,libsql"
TANSU_ROOT=()
if [ "$KAFKA_STORAGE" = postgres ]; then
  # A second tansu, with the postgres feature, in its own cargo root: the sqlite one stays.
  TANSU_PG_ROOT="${WXPULSE_TANSU_PG_ROOT:-${CARGO_HOME:-$HOME/.cargo}/tansu-postgres}"
  TANSU="$TANSU_PG_ROOT/bin/tansu"
  TANSU_FEATURES="dynostore,libsql,postgres"
  TANSU_ROOT=(--root "$TANSU_PG_ROOT")
fi
VENV="$LOCAL_DIR/.venv"
REQUIREMENTS="$LOCAL_DIR/requirements.txt"
REQ_STAMP="$VENV/.requirements.sha256"
INSTALL_LOCK="${TMPDIR:-/tmp}/wxpulse-stack-install.$(id -u).lock"

log() { echo "[stack] $*"; }
die() { echo "[stack] ERROR: $*" >&2; exit 1; }

case "$KAFKA_PORT$CH_PORT" in *[!0-9]*) die "ports must be numbers (got '$KAFKA_PORT', '$CH_PORT')" ;; esac
case "$KAFKA_STORAGE" in sqlite|memory|postgres) ;; *) die "WXPULSE_KAFKA_STORAGE must be sqlite, memory or postgres (got '$KAFKA_STORAGE')" ;; esac
[ "$KAFKA_PORT" != "$CH_PORT" ] || die "WXPULSE_KAFKA_PORT and WXPULSE_CH_PORT are both $KAFKA_PORT"
# Absolute path: tansu runs with its data dir as cwd.
case "$STACK_DIR" in /*) ;; *) STACK_DIR="$PWD/$STACK_DIR" ;; esac
SECURE_DIR="$STACK_DIR/secure"
# shellcheck disable=SC1091  # linted on its own (check-deploy.sh lints every tracked .sh)
. "$LOCAL_DIR/stack_postgres.sh"
# A stack brought up secure stays secure for start/stop/env until purged.
[ -f "$SECURE_DIR/wxpulse.toml" ] && SECURE=1

# ---------------------------------------------------------------- install

tansu_ok() { [ -x "$TANSU" ] && [ "$("$TANSU" --version 2>/dev/null)" = "tansu $TANSU_VERSION" ]; }
req_hash() { sha256sum "$REQUIREMENTS" | cut -d' ' -f1; }
venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null &&
    [ -f "$REQ_STAMP" ] && [ "$(cat "$REQ_STAMP")" = "$(req_hash)" ]
}

cmd_install() {
  if tansu_ok && venv_ok && { [ "$KAFKA_STORAGE" != postgres ] || pg_installed; }; then return 0; fi
  # One installer at a time (parallel test stacks share ~/.cargo and the venv).
  exec 9>"$INSTALL_LOCK"
  flock 9
  if ! tansu_ok; then
    command -v cargo >/dev/null || die "cargo not found (install Rust via rustup)"
    log "installing tansu $TANSU_VERSION ($TANSU_FEATURES) with cargo (takes 15-20 minutes on 2 cores)..."
    # --force: also replaces a binary that is present but not a working 0.6.0
    cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" --force ${TANSU_ROOT[@]+"${TANSU_ROOT[@]}"}
    tansu_ok || die "$TANSU is not tansu $TANSU_VERSION after cargo install"
  fi
  if ! venv_ok; then
    if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; }; then
      log "creating $VENV"
      rm -rf "$VENV"
      python3 -m venv "$VENV"
    fi
    log "pip install -r deploy/local/requirements.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS"
    req_hash >"$REQ_STAMP"
  fi
  [ "$KAFKA_STORAGE" != postgres ] || pg_install_server
  exec 9>&-
  log "installed: $("$TANSU" --version), $("$VENV/bin/python" --version)"
}

# ---------------------------------------------------------------- helpers

pidfile() { echo "$STACK_DIR/pids/$1.pid"; }
portfile() { echo "$STACK_DIR/pids/$1.port"; }
logfile() { echo "$STACK_DIR/logs/$1.log"; }

# alive PID: running (not a zombie)
alive() {
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# running_pid COMPONENT: prints the pid if the component of this STACK_DIR runs.
running_pid() {
  local f pid args
  f="$(pidfile "$1")"
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && alive "$pid" || return 1
  # guard against pid reuse
  args="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  case "$1:$args" in
    kafka:*tansu*broker* | clickhouse:*chdb_http.py*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

component_port() {
  local f
  f="$(portfile "$1")"
  if running_pid "$1" >/dev/null && [ -f "$f" ]; then cat "$f"
  elif [ "$1" = kafka ]; then echo "$KAFKA_PORT"
  else echo "$CH_PORT"; fi
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_free PORT: nothing listens on 127.0.0.1:PORT (same bind as the servers, SO_REUSEADDR).
port_free() {
  python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
EOF
}

kafka_ready() {
  tcp_open "$1" || return 1
  # With --authentication tansu answers nothing before a SASL login, which its CLI cannot do.
  if [ "$SECURE" = 1 ] && [ -f "$SECURE_DIR/kafka-user" ]; then return 0; fi
  # Metadata request (tansu retries for ~30 s on refusal, hence the TCP check first).
  timeout 5 "$TANSU" topic list --broker "tcp://127.0.0.1:$1" 2>/dev/null | grep -q '^\['
}
clickhouse_ready() {
  if [ "$SECURE" = 1 ]; then
    [ "$(curl -sf --max-time 2 --cacert "$SECURE_DIR/ca.pem" "https://127.0.0.1:$1/ping" 2>/dev/null)" = "Ok." ]
  else
    [ "$(curl -sf --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null)" = "Ok." ]
  fi
}

# ---------------------------------------------------------------- secure mode

# Makes what a secure stack needs, once per stack dir: a CA and a server certificate for
# 127.0.0.1/localhost (openssl), the SCRAM user's password, and the wxpulse config that
# uses them (printed by 'env').
secure_setup() {
  [ "$KAFKA_STORAGE" = sqlite ] || die "--secure needs WXPULSE_KAFKA_STORAGE=sqlite (tansu keeps SCRAM users only there)"
  command -v openssl >/dev/null || die "--secure needs the openssl command"
  mkdir -p "$SECURE_DIR"
  chmod 700 "$SECURE_DIR"
  if [ ! -f "$SECURE_DIR/server.pem" ]; then
    log "secure: making a CA and a server certificate for 127.0.0.1 in $SECURE_DIR"
    (
      cd "$SECURE_DIR"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 30 -subj "/CN=wxpulse local CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj "/CN=localhost" 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
        -days 30 -extfile server.ext 2>/dev/null
      rm -f server.csr server.ext ca.srl
    ) || die "secure: openssl failed"
  fi
  if [ ! -f "$SECURE_DIR/kafka-password" ]; then
    # Digits with a leading zero on purpose: a numeric-looking password must stay a string.
    (umask 077 && printf '0%s' "$(od -An -N6 -tu8 /dev/urandom | tr -dc 0-9)" >"$SECURE_DIR/kafka-password")
  fi
  cat >"$SECURE_DIR/wxpulse.toml" <<EOF
# Written by deploy/local/stack.sh up --secure: how wxpulse reaches this stack.
# Tansu 0.6 does SASL/SCRAM but not TLS, hence SASL_PLAINTEXT; a real cluster: SASL_SSL.
[kafka.client]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "SCRAM-SHA-512"

[clickhouse.tls]
ca_file = "$SECURE_DIR/ca.pem"
EOF
}

# Creates the SCRAM user in the broker's sqlite store: tansu 0.6 serves AlterUserScram-
# Credentials only to authenticated clients, so the user is made by a broker started
# without --authentication on the same store, once.
kafka_create_user() {
  local port="$1" pf lf pid i
  [ -f "$SECURE_DIR/kafka-user" ] && return 0
  pf="$(pidfile kafka)"
  lf="$(logfile kafka)"
  echo "=== [stack] start kafka (creating the SCRAM user) $(date -u +%FT%TZ) port $port ===" >>"$lf"
  spawn "$STACK_DIR/kafka" "$pf" "$lf" "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://kafka.db?maintenance_interval=5s"
  for ((i = 0; i < TIMEOUT * 5; i++)); do
    kafka_ready "$port" && break
    sleep 0.2
  done
  pid="$(cat "$pf" 2>/dev/null || true)"
  if ! timeout 30 "$TANSU" user create --broker "tcp://127.0.0.1:$port" --mechanism scram512 \
    "$SASL_USER" "$(cat "$SECURE_DIR/kafka-password")" >>"$lf" 2>&1; then
    [ -n "$pid" ] && stop_pid kafka "$pid"
    rm -f "$pf"
    die "kafka: cannot create the SCRAM user (see $lf)"
  fi
  [ -n "$pid" ] && stop_pid kafka "$pid"
  rm -f "$pf"
  echo "$SASL_USER" >"$SECURE_DIR/kafka-user"
  log "kafka: SCRAM-SHA-512 user $SASL_USER created"
}

# Lines of the log since the last start marker.
last_log_lines() {
  awk '/^=== \[stack\] start /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$(logfile "$1")" 2>/dev/null |
    tail -n "${2:-25}" | sed 's/^/    /' >&2
}

# ---------------------------------------------------------------- start / stop

# spawn CWD PIDFILE LOG CMD...: run CMD detached in its own session (pgid = pid),
# its pid written to PIDFILE by the process itself before exec.
spawn() {
  local dir="$1" pf="$2" lf="$3"
  shift 3
  # shellcheck disable=SC2016 # $$ and $@ expand in the child bash
  (cd "$dir" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" </dev/null >>"$lf" 2>&1 &)
}

start_component() {
  local c="$1" port pid lf pf deadline
  [ "$c" = kafka ] && port="$KAFKA_PORT" || port="$CH_PORT"
  if pid="$(running_pid "$c")"; then
    log "$c already running (pid $pid, port $(component_port "$c"))"
    [ "$(component_port "$c")" = "$port" ] ||
      log "WARNING: $c of $STACK_DIR runs on port $(component_port "$c"), not $port; 'down' it first to change ports"
    return 0
  fi
  mkdir -p "$STACK_DIR/logs" "$STACK_DIR/pids" "$STACK_DIR/$c"
  pf="$(pidfile "$c")"
  lf="$(logfile "$c")"
  rm -f "$pf" "$(portfile "$c")"
  # tansu exits 0 (after a panic) when its port is taken: check first.
  port_free "$port" || die "$c: port 127.0.0.1:$port is already in use (set WXPULSE_$( [ "$c" = kafka ] && echo KAFKA || echo CH )_PORT)"

  local secure_args=() what=""
  if [ "$SECURE" = 1 ]; then
    secure_setup
    if [ "$c" = kafka ]; then
      kafka_create_user "$port"
      secure_args=(--authentication)
      what=", SASL/SCRAM"
    else
      secure_args=(--tls-cert "$SECURE_DIR/server.pem" --tls-key "$SECURE_DIR/server.key")
      what=" (HTTPS)"
    fi
  fi
  echo "=== [stack] start $c $(date -u +%FT%TZ) port $port ===" >>"$lf"
  if [ "$c" = kafka ]; then
    local storage="memory://tansu/"
    # Relative path on purpose: tansu 0.6 joins sqlite://<path> onto its cwd, even an absolute one.
    [ "$KAFKA_STORAGE" = sqlite ] && storage="sqlite://kafka.db?maintenance_interval=5s"
    if [ "$KAFKA_STORAGE" = postgres ]; then pg_start; storage="$(pg_url)"; fi
    spawn "$STACK_DIR/kafka" "$pf" "$lf" "$TANSU" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$storage" ${secure_args[@]+"${secure_args[@]}"}
    log "kafka: starting tansu on 127.0.0.1:$port (storage $KAFKA_STORAGE$what)"
  else
    spawn "$STACK_DIR" "$pf" "$lf" "$VENV/bin/python" -u "$LOCAL_DIR/chdb_http.py" \
      --host 127.0.0.1 --port "$port" --data-dir "$STACK_DIR/clickhouse" ${secure_args[@]+"${secure_args[@]}"}
    log "clickhouse: starting chdb-http on 127.0.0.1:$port$what"
  fi

  deadline=$((SECONDS + TIMEOUT))
  while :; do
    pid="$(cat "$pf" 2>/dev/null || true)"
    if [ -n "$pid" ] && ! alive "$pid"; then
      echo "[stack] ERROR: $c exited during startup; last lines of $lf:" >&2
      last_log_lines "$c"
      rm -f "$pf"
      exit 1
    fi
    if [ -n "$pid" ] && "${c}_ready" "$port"; then break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "[stack] ERROR: $c did not answer on port $port within ${TIMEOUT}s; last lines of $lf:" >&2
      last_log_lines "$c"
      [ -n "$pid" ] && stop_pid "$c" "$pid" >/dev/null
      rm -f "$pf"
      exit 1
    fi
    sleep 0.2
  done
  echo "$port" >"$(portfile "$c")"
  log "$c: up (pid $pid, 127.0.0.1:$port)"
  if [ "$c" = kafka ] && [ "$KAFKA_STORAGE" = sqlite ]; then kafka_index_headers; fi
}

# Tansu 0.6's sqlite schema has no index on its record-header table, so every fetch scans
# every header stored: the overflow topics (two headers per diverted record) stall it at
# tens of thousands of records (deploy/local/bench_hot_keys.sh). A broker would index it.
kafka_index_headers() {
  "$VENV/bin/python" - "$STACK_DIR/kafka/kafka.db" <<'PY' || log "WARNING: could not index tansu's header table"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'header'").fetchone():
    db.execute("CREATE INDEX IF NOT EXISTS wxpulse_header_record ON header (topition, offset_id)")
    db.commit()
PY
}

# stop_pid NAME PID: SIGTERM its process group, SIGKILL after 10 s.
stop_pid() {
  local c="$1" pid="$2" i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.2
  done
  log "$c: still running after 10s, sending SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 25; i++)); do
    alive "$pid" || return 0
    sleep 0.2
  done
  die "$c: pid $pid survived SIGKILL"
}

stop_component() {
  local c="$1" pid
  if pid="$(running_pid "$c")"; then
    log "$c: stopping pid $pid"
    stop_pid "$c" "$pid"
    log "$c: stopped"
  else
    log "$c: not running"
  fi
  rm -f "$(pidfile "$c")" "$(portfile "$c")"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local p
  for p in "$@"; do
    case "$p" in --secure) SECURE=1 ;; *) die "up: unknown option '$p'" ;; esac
  done
  cmd_install
  start_component kafka
  start_component clickhouse
  log "stack up in $STACK_DIR; use: eval \"\$($0 env)\""
}

cmd_down() {
  local purge=0 p
  for p in "$@"; do
    case "$p" in --purge) purge=1 ;; *) die "down: unknown option '$p'" ;; esac
  done
  stop_component clickhouse
  stop_component kafka
  pg_stop
  if [ "$purge" = 1 ] && [ -d "$STACK_DIR" ]; then
    # Only what we created: WXPULSE_STACK_DIR may point anywhere.
    rm -rf "$STACK_DIR/kafka" "$STACK_DIR/clickhouse" "$STACK_DIR/logs" "$STACK_DIR/pids" "$SECURE_DIR" "$PG_DIR"
    rmdir "$STACK_DIR" 2>/dev/null || true
    log "purged data in $STACK_DIR"
  fi
}

cmd_status() {
  local c pid port up=0 state extra
  for c in kafka clickhouse; do
    port="$(component_port "$c")"
    if pid="$(running_pid "$c")"; then
      if "${c}_ready" "$port"; then state="up"; up=$((up + 1)); else state="running, not answering"; fi
      extra=""
      if [ "$c" = kafka ]; then
        case "$(tr '\0' ' ' <"/proc/$pid/cmdline")" in
          *memory://*) extra=" (memory)" ;;
          *postgres://*) extra=" (postgres, $(pg_running && echo up || echo DOWN) on 127.0.0.1:$(pg_port))" ;;
          *) extra=" (sqlite)" ;;
        esac
      fi
      printf '[stack] %-10s %-22s pid %-7s 127.0.0.1:%s%s  log %s\n' "$c" "$state" "$pid" "$port" "$extra" "$(logfile "$c")"
    else
      printf '[stack] %-10s down\n' "$c"
    fi
  done
  log "stack dir $STACK_DIR"
  [ "$up" = 2 ] || exit 3
}

cmd_env() {
  echo "export WXPULSE__KAFKA__BROKERS=127.0.0.1:$(component_port kafka)"
  if [ "$SECURE" = 1 ]; then
    echo "export WXPULSE__CLICKHOUSE__URL=https://127.0.0.1:$(component_port clickhouse)"
    echo "export WXPULSE_CONFIG=$SECURE_DIR/wxpulse.toml"
    echo "export WXPULSE_KAFKA_SASL_USERNAME=$SASL_USER"
    echo "export WXPULSE_KAFKA_SASL_PASSWORD_FILE=$SECURE_DIR/kafka-password"
  else
    echo "export WXPULSE__CLICKHOUSE__URL=http://127.0.0.1:$(component_port clickhouse)"
  fi
}

component_arg() {
  case "${1:-}" in
    kafka|clickhouse) ;;
    *) die "usage: $0 start|stop kafka|clickhouse" ;;
  esac
}

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

cd "$REPO_ROOT"
cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install) cmd_install ;;
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  start) component_arg "${1:-}"; cmd_install; start_component "$1" ;;
  stop) component_arg "${1:-}"; stop_component "$1" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
