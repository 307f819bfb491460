# shellcheck shell=bash
# Sourced by stack.sh: Tansu's storage on a private PostgreSQL (WXPULSE_KAFKA_STORAGE=postgres).
#
# The PostgreSQL server is the system's (Debian: apt-get install postgresql; `install`
# does it when it is missing and it can), run as a private cluster under
# $STACK_DIR/postgres/data on 127.0.0.1 only (port: WXPULSE_PG_PORT, else a free one chosen
# once and kept in $STACK_DIR/postgres/port), with trust auth for the local user "tansu".
# It is the broker's disk: `stop kafka` and kill -9 of the broker leave it running, `start
# kafka` starts it if needed, `down` stops it, `down --purge` deletes it. The tansu built
# with the postgres feature goes to its own cargo root (WXPULSE_TANSU_PG_ROOT), so the
# sqlite one in ~/.cargo/bin is never replaced. As root, the server runs as the "postgres"
# user (PostgreSQL refuses root), which then needs to traverse $STACK_DIR (made o+x).

PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_SCHEMA="$LOCAL_DIR/tansu-postgres.sql"

# pg_bindir: the newest installed server's bin dir (WXPULSE_PG_BIN overrides).
pg_bindir() {
  local d
  if [ -n "${WXPULSE_PG_BIN:-}" ]; then echo "$WXPULSE_PG_BIN"; return 0; fi
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  command -v pg_ctl >/dev/null && dirname "$(command -v pg_ctl)" && return 0
  return 1
}
pg_server_ok() { local d; d="$(pg_bindir)" && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ]; }

pg_install_server() {
  pg_server_ok && return 0
  command -v apt-get >/dev/null || die "postgres storage needs a PostgreSQL server (13 or later): install it, or set WXPULSE_PG_BIN"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
      die "postgres storage needs PostgreSQL: run 'sudo apt-get install postgresql' first"
    fi
    sudo=(sudo -n)
  fi
  log "installing PostgreSQL with apt-get (postgres storage)..."
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2 ||
    { "${sudo[@]}" apt-get update -q >&2 &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2; } ||
    die "apt-get install postgresql failed"
  pg_server_ok || die "no PostgreSQL server found after apt-get install postgresql"
}

# pg_run CMD...: runs a PostgreSQL program as the user that owns the cluster.
pg_run() {
  local bin
  bin="$(pg_bindir)/$1"
  shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin" "$@"; else "$bin" "$@"; fi
}

pg_port() {
  if [ -n "${WXPULSE_PG_PORT:-}" ]; then echo "$WXPULSE_PG_PORT"
  elif [ -f "$PG_DIR/port" ]; then cat "$PG_DIR/port"
  else python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; fi
}

pg_url() { echo "postgres://tansu@127.0.0.1:$(pg_port)/tansu?maintenance_interval=5s"; }

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && pg_run pg_ctl -D "$PG_DATA" status >/dev/null 2>&1; }

# pg_start: initializes the cluster and tansu's schema once, starts the server if it is not
# running, and waits until it answers.
pg_start() {
  local port lf
  pg_server_ok || die "no PostgreSQL server (run: WXPULSE_KAFKA_STORAGE=postgres $0 install)"
  mkdir -p "$PG_DIR" "$STACK_DIR/logs"
  lf="$(logfile postgres)"
  if [ "$(id -u)" = 0 ]; then
    chmod o+x "$STACK_DIR"
    runuser -u postgres -- test -x "$PG_DIR/.." ||
      die "postgres: the postgres user cannot reach $STACK_DIR (a parent dir is not o+x)"
    chown postgres: "$PG_DIR"
    touch "$lf" && chown postgres: "$lf"
  fi
  port="$(pg_port)"
  echo "$port" >"$PG_DIR/port"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "postgres: initdb $PG_DATA"
    pg_run initdb -D "$PG_DATA" -U tansu --auth=trust -E UTF8 --no-instructions >>"$lf" 2>&1 ||
      die "postgres: initdb failed (see $lf)"
    # As sqlite's WAL with synchronous=normal (Tansu's setting): a commit survives the
    # broker's crash (the server holds it), not the machine's power loss.
    cat >>"$PG_DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
synchronous_commit = off
EOF
  fi
  if ! pg_running; then
    port_free "$port" || die "postgres: port 127.0.0.1:$port is already in use (set WXPULSE_PG_PORT)"
    echo "=== [stack] start postgres $(date -u +%FT%TZ) port $port ===" >>"$lf"
    pg_run pg_ctl -D "$PG_DATA" -l "$lf" -o "-p $port" -w -t "$TIMEOUT" start >/dev/null ||
      { last_log_lines postgres; die "postgres: did not start (see $lf)"; }
    log "postgres: up ($(pg_run postgres --version | awk '{print $3}'), 127.0.0.1:$port)"
  fi
  if [ ! -f "$PG_DIR/schema.sha256" ]; then
    pg_run psql -q -X -h 127.0.0.1 -p "$port" -U tansu -d postgres -v ON_ERROR_STOP=1 \
      -c "create database tansu" >>"$lf" 2>&1 || die "postgres: create database failed (see $lf)"
    pg_run psql -q -X -h 127.0.0.1 -p "$port" -U tansu -d tansu -v ON_ERROR_STOP=1 \
      -f - <"$PG_SCHEMA" >>"$lf" 2>&1 || die "postgres: tansu's schema failed (see $lf)"
    sha256sum "$PG_SCHEMA" | cut -d' ' -f1 >"$PG_DIR/schema.sha256"
    log "postgres: database tansu created with $(basename "$PG_SCHEMA")"
  fi
}

pg_stop() {
  [ -f "$PG_DATA/PG_VERSION" ] || return 0
  if pg_running; then
    log "postgres: stopping"
    pg_run pg_ctl -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null || log "WARNING: postgres did not stop"
  fi
}
