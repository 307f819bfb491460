#!/usr/bin/env python3
"""chdb-http: a small ClickHouse HTTP-interface server backed by chdb (the real
ClickHouse engine, embedded).

It lets unmodified ClickHouse clients (the Rust `clickhouse` crate, curl, BI
tools) talk to a local, persistent chdb database as if it were a ClickHouse
server. It is our local/CI stand-in for ClickHouse; see ADAPTER.md.

Design in one paragraph: every request is read completely (chunked bodies
decoded, `decompress=1` native blocks and `Content-Encoding` undone), then ONE
global lock is taken and the statement runs on ONE shared chdb session:
`USE <database>`, `SET <url settings>`, run, restore the settings. INSERTs with a
`FORMAT` clause run as `INSERT ... FROM INFILE <spool file> FORMAT X` (the data is
written to a file on tmpfs first, see `Engine.insert`); everything else goes
through `session.query(sql, default_format)`. The whole result is buffered and
sent with a Content-Length (optionally as an LZ4 frame / gzip).

Guard rails, because it runs the real engine with the rights of the user who started it
and has no users or grants: it listens on loopback unless told otherwise, refuses table
functions and engines that read or write files or reach the network (file(), url(), s3(),
remote(), INTO OUTFILE, ...), refuses requests a browser sends from another origin (a web
page could otherwise POST SQL to localhost), and caps the request body and what it
decompresses to. `--tls-cert/--tls-key` serve HTTPS (`--tls-client-ca` also requires a
client certificate), for testing clients' TLS.

Usage: python chdb_http.py --host 127.0.0.1 --port 8123 --data-dir DIR
"""
import argparse
import contextlib
import errno
import gzip
import http.server
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import lz4.frame
from chdb import session as chdb_session

from chdb_http_protocol import (
    MAX_DECOMPRESSED_BYTES, MAX_REQUEST_BYTES, CHError, check_statement, content_type_for,
    decode_native_blocks, decompress_capped, parse_multipart, too_large,
)

log = logging.getLogger("chdb-http")

# URL parameters that are part of the HTTP protocol and must NOT become settings.
HTTP_ONLY_PARAMS = {
    "query", "database", "default_format", "decompress", "compress", "query_id",
    "session_id", "session_timeout", "session_check", "wait_end_of_query", "role",
    "user", "password", "quota_key", "buffer_size", "enable_http_compression",
    "stacktrace", "client_protocol_version",
    "readonly",  # SET readonly=1 could never be undone on the shared session
}
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `INSERT INTO t [(cols)] [SETTINGS ...] FORMAT Fmt` + the rule ClickHouse uses to
# find the start of the inline data: skip spaces/tabs, then at most one newline.
INSERT_FORMAT_RE = re.compile(
    rb"\s*INSERT\s+INTO\s+(?:TABLE\s+)?(?:`[^`]*`|\"[^\"]*\"|[\w.])+\s*(?:\([^)]*\))?\s*"
    rb"(?P<settings>SETTINGS\s.*?)?(?P<format>\bFORMAT\s+(?P<fmt>\w+))[ \t\f]*\r?\n?", re.I | re.S)
# A parse error of FROM INFILE data comes back wrapped once more than the server's:
# "Code: N. DB::Exception: <msg> (version V). (NAME)", <msg> naming our spool file.
NESTED_ERROR_RE = re.compile(r"Code: \d+\. DB::Exception: (.*) \(version [^()]*\)\. \(\w+\)", re.S)
INFILE_NOISE = ": While executing File: data for INSERT was parsed from file"
OUTPUT_FORMAT_RE = re.compile(r"\bFORMAT\s+(\w+)\s*(?:SETTINGS\b[^;]*)?;?\s*$", re.I | re.S)
SET_STMT_RE = re.compile(r"^\s*SET\s", re.I)
# chdb formats that return Python objects instead of bytes.
PYTHON_ONLY_FORMATS = {"dataframe", "arrowtable", "datastore", "debug"}


def sql_string(value):
    """Quote a value as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Engine:
    """The single shared chdb session. All chdb calls go through `_scope()`, which
    holds the global lock: chdb runs one query at a time per process, and all
    INSERTs share one spool file (see `insert()`)."""

    def __init__(self, data_dir):
        self.lock = threading.Lock()
        self.session = chdb_session.Session(data_dir)
        self.version, self.timezone, self.hostname = (
            self.session.query("SELECT version(), timezone(), hostName()", "TSV").bytes()
            .decode().strip().split("\t"))
        # Settings chdb itself changes at startup; restoring means "back to these".
        self.baseline = self._changed_settings()
        # INSERT data is spooled here (see insert()); tmpfs if there is one. The
        # mkdtemp name has no FROM INFILE glob characters (*?{}[]).
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.spool_dir = tempfile.mkdtemp(prefix="chdb-http-", dir=shm)
        self.spool = os.path.join(self.spool_dir, "insert.data")

    def _changed_settings(self):
        out = self.session.query(
            "SELECT name, value FROM system.settings WHERE changed AND name != 'database'",
            "JSONCompactEachRow").bytes()
        return dict(json.loads(line) for line in out.splitlines())

    def _restore_sql(self, names):
        return "SET " + ", ".join(
            f"{n} = {sql_string(self.baseline[n])}" if n in self.baseline else f"{n} = DEFAULT"
            for n in names)

    def _restore(self, names):
        try:
            self.session.query(self._restore_sql(names))
        except Exception:  # e.g. an unknown name in the list: reset one by one
            for name in names:
                try:
                    self.session.query(self._restore_sql([name]))
                except Exception:
                    pass

    @contextlib.contextmanager
    def _scope(self, database, settings):
        """Hold the lock, switch to `database` and apply per-request settings; on
        exit put every setting back, so nothing leaks into the next request."""
        with self.lock:
            try:
                self.session.query(f"USE `{database.replace('`', '``')}`")
                if settings:
                    self.session.query("SET " + ", ".join(
                        f"{k} = {sql_string(v)}" for k, v in settings.items()))
                yield
            finally:
                if settings:
                    self._restore(list(settings))

    def query(self, sql, database, settings, params, fmt):
        """Run any statement; returns (body bytes, summary dict)."""
        with self._scope(database, settings):
            try:
                res = self.session.query(sql, fmt, params=params)
            finally:
                # Without a session_id, ClickHouse forgets a SET at the end of the
                # request; emulate that so it cannot leak into later requests.
                if SET_STMT_RE.match(sql):
                    changed = self._changed_settings()
                    stale = [n for n in changed.keys() | self.baseline.keys()
                             if changed.get(n) != self.baseline.get(n)]
                    if stale:
                        self._restore(stale)
        return res.bytes(), {
            "read_rows": res.storage_rows_read(), "read_bytes": res.storage_bytes_read(),
            "written_rows": res.rows_written(), "written_bytes": res.bytes_written(),
            "total_rows_to_read": res.storage_rows_read(),
            "result_rows": res.rows_read(), "result_bytes": res.bytes_read()}

    def insert(self, target, settings_clause, fmt, data, database, settings):
        """Insert `data` (already fully read, FORMAT `fmt`) into `target` = "INSERT INTO
        t(cols)", with the statement's own `settings_clause` ("SETTINGS ..." or "").

        Why FROM INFILE and not chdb's streaming `send_insert()` (used before): it
        loses every error the engine raises after the data is parsed, most
        importantly a failing materialized view. Its worker
        (ChdbClient::runInsertStreamWorker) ends with receiveEndOfQueryForInsert(),
        which only stores the engine's exception in ClientBase::server_exception;
        nothing reads it there, so `finish()` reports success and neither its result
        nor the inserter carries the error (measured on chdb-core 26.9.0). The
        ordinary query path is ClickHouse's own client INSERT path (ClientBase, as in
        clickhouse-local): blocks go to the engine, and the engine's exception comes
        back as the query's error, as from a server. That path cannot take binary
        data inline, though: `session.query(b"INSERT ... FORMAT RowBinary\n" + data)`
        is accepted, but a blank line ("\n\n") in the data silently ends it (the rest
        is dropped or misparsed), and some byte sequences fail in UTF-8 decoding. So
        the data goes to a file on tmpfs and the statement reads it with FROM
        INFILE. Nothing is inserted twice; the source table and the MVs that ran keep
        their rows (ClickHouse has no rollback); dedup tokens behave as with
        send_insert; the cost is one copy into tmpfs. Polling `system.errors` after
        send_insert instead would be racy (background merges count there too) and
        could not tell which insert failed; query_log needs a log flush per insert.
        """
        sql = (f"{target} FROM INFILE {sql_string(self.spool)} COMPRESSION 'none' "
               f"{settings_clause} FORMAT {fmt}")
        with self._scope(database, settings):
            try:
                with open(self.spool, "wb") as f:
                    f.write(data)
                res = self.session.query(sql, "TabSeparated")
            except Exception as e:
                raise self._insert_error(e) from None
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(self.spool)  # give the tmpfs memory back now
        return b"", {"read_rows": 0, "read_bytes": 0, "written_rows": res.rows_written(),
                     "written_bytes": res.bytes_written(), "total_rows_to_read": 0,
                     "result_rows": res.rows_written(), "result_bytes": res.bytes_written()}

    def _insert_error(self, exc):
        """The error as the server would word it: data parse errors from FROM INFILE
        are wrapped twice and name our spool file; unwrap them."""
        err = CHError.from_exception(exc)
        m = NESTED_ERROR_RE.fullmatch(err.message)
        if m:
            err.message = m.group(1)
        err.message = (err.message.replace(f": (in file/uri {self.spool})", "")
                       .replace(INFILE_NOISE, ""))
        return err

    def close(self):
        with self.lock:
            self.session.close()
            shutil.rmtree(self.spool_dir, ignore_errors=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response has a Content-Length
    disable_nagle_algorithm = True  # TCP_NODELAY: otherwise ~40 ms stalls per response
    server_version = "chdb-http"
    engine: Engine = None  # set in main()
    max_request_bytes = MAX_REQUEST_BYTES
    max_decompressed_bytes = MAX_DECOMPRESSED_BYTES

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def log_request(self, code="-", size="-"):  # we log our own line in _send()
        pass

    def log_message(self, fmt, *args):  # route http.server's own messages to logging
        log.warning("%s " + fmt, self.address_string(), *args)

    def _read_body(self):
        limit = self.max_request_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"x", 16)
                if len(out) + size > limit:
                    raise too_large("The request body", limit)
                if size == 0:
                    while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("truncated chunked body")
                out += chunk
                self.rfile.readline(1024)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise too_large("The request body", limit)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("truncated body")
        return body

    def _handle(self):
        started = time.perf_counter()
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path.rstrip("/") == "/ping" or (
                self.command == "GET" and "query" not in params and url.path in ("", "/")):
            return self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, started)
        query_id = params.get("query_id") or str(uuid.uuid4())
        refused = self._cross_origin()
        if refused:
            self.close_connection = True
            return self._send_error(CHError(497, f"{refused} (ACCESS_DENIED)"), query_id, started)
        try:
            body = self._read_body()
        except CHError as e:  # over the size limit: the rest of the body is never read
            self.close_connection = True
            return self._send_error(e, query_id, started)
        except (ValueError, ConnectionError) as e:
            self.close_connection = True
            return self._send_error(CHError(33, f"Cannot read request body: {e}. (CANNOT_READ_ALL_DATA)"),
                                    query_id, started)
        try:
            status, out, headers = self._execute(params, body, query_id)
        except CHError as e:
            return self._send_error(e, query_id, started)
        except Exception as e:  # chdb raises ChdbError / RuntimeError
            return self._send_error(CHError.from_exception(e), query_id, started)
        self._send(status, out, headers, started)

    def _cross_origin(self):
        """Why a request sent by a browser on behalf of another site is refused, or None.
        ClickHouse clients send no Origin; a web page's fetch() to localhost does, and a
        form POST needs no CORS preflight, so without this any page could run SQL here."""
        origin = self.headers.get("Origin")
        site = self.headers.get("Sec-Fetch-Site", "").lower()
        if site == "cross-site" or site == "same-site":
            return f"Cross-origin request refused (Sec-Fetch-Site: {site})."
        if origin is None:
            return None
        host = self.headers.get("Host", "")
        if origin in (f"http://{host}", f"https://{host}"):
            return None
        return f"Cross-origin request refused (Origin: {origin[:100]})."

    def _execute(self, params, body, query_id):
        ctype = self.headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/form-data"):
            params.update({k: v.decode() for k, v in parse_multipart(body, ctype).items()})
            body = b""
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding:
            body = decompress_capped(body, encoding, self.max_decompressed_bytes)
        if params.get("decompress") in ("1", "true"):
            body = decode_native_blocks(body, self.max_decompressed_bytes)

        database = params.get("database") or self.headers.get("X-ClickHouse-Database") or "default"
        default_format = (params.get("default_format") or self.headers.get("X-ClickHouse-Format")
                          or "TabSeparated")
        if default_format.lower() in PYTHON_ONLY_FORMATS:
            raise CHError(73, f"Unknown output format {default_format}. (UNKNOWN_FORMAT)")
        qparams = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items()
                    if k not in HTTP_ONLY_PARAMS and not k.startswith(("param_", "http_"))}
        for name in settings:
            if not NAME_RE.match(name):
                raise CHError(115, f"Unknown setting '{name}'. (UNKNOWN_SETTING)")

        # ClickHouse executes `query` param + "\n" + body as one statement text.
        full = (params["query"].encode() + b"\n" + body) if "query" in params else body
        m = INSERT_FORMAT_RE.match(full)
        if m:  # INSERT ... FORMAT X <data>: hand the data part to chdb as a file
            target = full[:m.start("settings" if m.group("settings") else "format")]
            check_statement(full[:m.end()].decode("utf-8", "replace"))
            out, summary = self.engine.insert(
                target.decode().strip(), (m.group("settings") or b"").decode().strip(),
                m.group("fmt").decode(), memoryview(full)[m.end():], database, settings)
            fmt = default_format
        else:
            sql = full.decode("utf-8", "replace")
            check_statement(sql)
            fm = OUTPUT_FORMAT_RE.search(sql)
            fmt = fm.group(1) if fm else default_format
            out, summary = self.engine.query(sql, database, settings, qparams, default_format)
        headers = {
            "Content-Type": content_type_for(fmt),
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": settings.get("session_timezone") or self.engine.timezone,
            "X-ClickHouse-Summary": summary,
        }
        # Response compression, only if the client asked for it (ClickHouse >= 25.10
        # has enable_http_compression=1 by default).
        accept = {e.split(";")[0].strip().lower()
                  for e in self.headers.get("Accept-Encoding", "").split(",")}
        if params.get("enable_http_compression", "1") not in ("0", "false"):
            if "lz4" in accept:
                out, headers["Content-Encoding"] = lz4.frame.compress(out), "lz4"
            elif "gzip" in accept:
                out, headers["Content-Encoding"] = gzip.compress(out, 3), "gzip"
        return 200, out, headers

    def _send_error(self, err, query_id, started):
        text = f"Code: {err.code}. DB::Exception: {err.message} (version {self.engine.version} (official build))\n"
        log.warning("query %s failed: %s", query_id, text.strip())
        self._send(err.http_status(), text.encode(), {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Exception-Code": str(err.code),
        }, started)

    def _send(self, status, body, headers, started):
        elapsed_ns = int((time.perf_counter() - started) * 1e9)
        self.send_response(status)
        self.send_header("X-ClickHouse-Server-Display-Name", self.engine.hostname)
        for k, v in headers.items():
            if k == "X-ClickHouse-Summary":  # ClickHouse sends every value as a string
                v = json.dumps({n: str(x) for n, x in dict(v, elapsed_ns=elapsed_ns).items()},
                               separators=(",", ":"))
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=30")
        self.end_headers()
        self.wfile.write(body)
        log.debug("%s %s -> %d, %d bytes, %.1f ms", self.command, self.path[:200], status,
                  len(body), elapsed_ns / 1e6)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    tls_context = None  # set in main() for HTTPS

    def finish_request(self, request, client_address):
        """The TLS handshake runs here, on the request's own thread, so a slow or failing
        client cannot hold up the accept loop."""
        if self.tls_context is not None:
            try:
                request.settimeout(30)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                log.warning("TLS handshake with %s failed: %s", client_address[0], e)
                return
        super().finish_request(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default loopback; anything else needs --allow-remote)")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback --host: the adapter has no users or grants")
    ap.add_argument("--port", type=int, default=8123)
    ap.add_argument("--data-dir", required=True, help="persistent chdb database directory")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    ap.add_argument("--tls-client-ca", help="PEM CA: also require a client certificate it signed")
    ap.add_argument("--max-request-bytes", type=int, default=MAX_REQUEST_BYTES,
                    help=f"largest request body accepted (default {MAX_REQUEST_BYTES})")
    ap.add_argument("--max-decompressed-bytes", type=int, default=MAX_DECOMPRESSED_BYTES,
                    help=f"largest body after decompression (default {MAX_DECOMPRESSED_BYTES})")
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not is_loopback(args.host) and not args.allow_remote:
        print(f"chdb-http: refusing to listen on {args.host}: it has no users or grants, so "
              "anyone who reaches it owns it; pass --allow-remote to do it anyway", file=sys.stderr)
        return 2
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        print("chdb-http: --tls-cert and --tls-key go together (and --tls-client-ca needs them)",
              file=sys.stderr)
        return 2
    Handler.max_request_bytes = args.max_request_bytes
    Handler.max_decompressed_bytes = args.max_decompressed_bytes
    try:  # bind first: fail fast (before opening the database) if the port is taken
        server = Server((args.host, args.port), Handler)
    except OSError as e:
        reason = "address already in use" if e.errno == errno.EADDRINUSE else e.strerror
        print(f"chdb-http: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    scheme = "http"
    if args.tls_cert:
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(args.tls_client_ca)
        except (OSError, ssl.SSLError) as e:
            print(f"chdb-http: cannot load the TLS certificate or key: {e}", file=sys.stderr)
            server.server_close()
            return 2
        server.tls_context = context
        scheme = "https"
    try:
        Handler.engine = Engine(args.data_dir)
    except Exception as e:  # e.g. another process already has this data dir open
        print(f"chdb-http: cannot open data dir {args.data_dir} (in use by another "
              f"process?): {e}", file=sys.stderr)
        server.server_close()
        return 3

    def stop(signum, _frame):
        log.info("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    print(f"chdb-http listening on {scheme}://{host}:{port}", flush=True)
    log.info("chdb %s, data dir %s", Handler.engine.version, args.data_dir)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    Handler.engine.close()  # waits for the running query; chdb flushes on close
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
