"""Tests for chdb_http.py: start the adapter as a subprocess on a free port with a
temporary data dir and talk HTTP to it, like the Rust `clickhouse` crate does.

Run from the repo root:  python -m unittest deploy/local/test_chdb_http.py
"""
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse

import lz4.block
import lz4.frame
from clickhouse_cityhash.cityhash import CityHash128

ADAPTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chdb_http.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Adapter:
    """One adapter subprocess; `req()` sends requests over a keep-alive connection."""

    def __init__(self, data_dir, port=None, extra=(), tls_context=None, host=("--host", "127.0.0.1")):
        self.data_dir, self.port = data_dir, port or free_port()
        self.proc = subprocess.Popen(
            [sys.executable, ADAPTER, *host, "--port", str(self.port),
             "--data-dir", data_dir, "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = [None]
        t = threading.Thread(target=lambda: line.__setitem__(0, self.proc.stdout.readline()))
        t.start()
        t.join(60)
        if not line[0] or b"listening on" not in line[0]:
            self.proc.kill()
            raise RuntimeError(f"adapter did not start: {line[0]!r} {self.proc.stderr.read()!r}")
        self.listening = line[0].decode().strip()
        if tls_context is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        else:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=60,
                                                    context=tls_context)

    def req(self, sql=None, body=b"", params=None, headers=None, method="POST", chunked=False,
            path="/"):
        params = dict(params or {})
        if sql is not None:
            params["query"] = sql
        url = path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = dict(headers or {})
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            body = iter([body[i:i + 1000] for i in range(0, len(body), 1000)] or [b""])
        self.conn.request(method, url, body=body or None, headers=headers, encode_chunked=chunked)
        r = self.conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()

    def q(self, sql, **params):
        """Run `sql` (in the body), assert success, return the text result."""
        status, _, body = self.req(body=sql.encode(), params=params)
        assert status == 200, (status, body)
        return body.decode()

    def stop(self):
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


def native_blocks(data, method=0x82, block_size=1 << 20):
    """Encode `data` like `decompress=1` clients do (ClickHouse native compression)."""
    out = b""
    for i in range(0, len(data), block_size):
        raw = data[i:i + block_size]
        payload = lz4.block.compress(raw, store_size=False) if method == 0x82 else raw
        block = struct.pack("<BII", method, 9 + len(payload), len(raw)) + payload
        h = CityHash128(block)
        out += struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF) + block
    return out


def row_binary(rows):
    """RowBinary for (UInt32, String) rows."""
    return b"".join(struct.pack("<I", a) + bytes([len(s)]) + s.encode() for a, s in rows)


class AdapterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chdb_http_test_")
        cls.ch = Adapter(os.path.join(cls.tmp, "db"))
        cls.ch.q("CREATE TABLE kv (a UInt32, s String) ENGINE = MergeTree ORDER BY a")

    @classmethod
    def tearDownClass(cls):
        cls.ch.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.ch.q("TRUNCATE TABLE kv")

    def test_ping(self):
        for path in ("/", "/ping"):
            status, _, body = self.ch.req(method="GET", path=path)
            self.assertEqual((status, body), (200, b"Ok.\n"))

    def test_select_formats(self):
        status, h, body = self.ch.req("SELECT 1 AS x, 'a' AS s", method="GET")
        self.assertEqual((status, body), (200, b"1\ta\n"))
        self.assertEqual(h["content-type"], "text/tab-separated-values; charset=UTF-8")
        self.assertEqual(h["x-clickhouse-format"], "TabSeparated")
        self.assertIn("x-clickhouse-query-id", h)
        self.assertIn("x-clickhouse-timezone", h)
        self.assertIn("x-clickhouse-server-display-name", h)
        summary = json.loads(h["x-clickhouse-summary"])
        self.assertEqual(summary["result_rows"], "1")
        self.assertTrue(all(isinstance(v, str) for v in summary.values()))
        self.assertEqual(self.ch.q("SELECT number n FROM numbers(2) FORMAT JSONEachRow"),
                         '{"n":0}\n{"n":1}\n')
        status, h, body = self.ch.req(body=b"SELECT toUInt32(7) AS a, 'hi' AS s",
                                      params={"default_format": "RowBinaryWithNamesAndTypes"})
        self.assertEqual(body, b"\x02\x01a\x01s\x06UInt32\x06String" + struct.pack("<I", 7) + b"\x02hi")
        self.assertEqual(h["content-type"], "application/octet-stream")
        # empty results stay valid for formats with a header
        _, _, body = self.ch.req(body=b"SELECT a FROM kv",
                                 params={"default_format": "RowBinaryWithNamesAndTypes"})
        self.assertEqual(body, b"\x01\x01a\x06UInt32")
        self.assertEqual(json.loads(self.ch.q("SELECT a FROM kv FORMAT JSON"))["data"], [])

    def test_default_format(self):
        self.assertEqual(self.ch.q("SELECT 1 AS x", default_format="JSONEachRow"), '{"x":1}\n')
        # an explicit FORMAT clause wins, and X-ClickHouse-Format reports it
        status, h, body = self.ch.req(body=b"SELECT 1 AS x FORMAT CSV",
                                      params={"default_format": "JSONEachRow"})
        self.assertEqual((body, h["x-clickhouse-format"]), (b"1\n", "CSV"))

    def test_database_param(self):
        self.ch.q("CREATE DATABASE IF NOT EXISTS other")
        self.ch.q("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = MergeTree ORDER BY x",
                  database="other")
        status, _, _ = self.ch.req("INSERT INTO t FORMAT TSV", b"5\n", params={"database": "other"})
        self.assertEqual(status, 200)
        self.assertEqual(self.ch.q("SELECT currentDatabase(), sum(x) FROM t", database="other"),
                         "other\t5\n")
        self.assertEqual(self.ch.q("SELECT currentDatabase()"), "default\n")  # no leak
        status, h, _ = self.ch.req(body=b"SELECT 1", params={"database": "nope"})
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (404, "81"))

    def test_settings_are_per_query(self):
        q = "SELECT getSetting('max_threads'), getSetting('insert_deduplication_token')"
        default = self.ch.q(q)
        self.assertEqual(self.ch.q(q, max_threads="1", insert_deduplication_token="tok"), "1\ttok\n")
        self.assertEqual(self.ch.q(q), default)
        # a SET statement must not leak either (ClickHouse without session_id)
        self.ch.q("SET max_threads = 1")
        self.assertEqual(self.ch.q(q), default)
        # HTTP-only parameters are not settings
        self.ch.q("SELECT 1", query_id="qid-1", session_id="s", user="default", password="x",
                  buffer_size="10", wait_end_of_query="1", http_headers_progress_interval_ms="1",
                  enable_http_compression="1", compress="0", role="r", session_timeout="60")
        status, h, body = self.ch.req(body=b"SELECT 1", params={"no_such_setting": "1"})
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (404, "115"))
        self.assertEqual(self.ch.q(q), default)
        status, h, _ = self.ch.req(body=b"SELECT 1", params={"query_id": "my-id"})
        self.assertEqual(h["x-clickhouse-query-id"], "my-id")

    def test_concurrent_clients(self):
        """Requests from parallel connections are serialized; settings stay per query."""
        errors = []

        def client(n):
            conn = http.client.HTTPConnection("127.0.0.1", self.ch.port, timeout=60)
            try:
                for i in range(10):
                    qs = urllib.parse.urlencode({"query": "INSERT INTO kv FORMAT RowBinary",
                                                 "insert_deduplication_token": f"c{n}-{i}"})
                    conn.request("POST", "/?" + qs, body=row_binary([(n * 100 + i, "c")]))
                    r = conn.getresponse()
                    r.read()
                    conn.request("POST", f"/?max_threads={n + 1}",
                                 body=b"SELECT getSetting('max_threads')")
                    r = conn.getresponse()
                    if (r.status, r.read()) != (200, f"{n + 1}\n".encode()):
                        errors.append((n, i))
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(self.ch.q("SELECT count() FROM kv"), "40\n")

    def test_query_params(self):
        self.assertEqual(self.ch.q("SELECT {x:UInt32} + 1, {s:String}", param_x="41",
                                   param_s="it's"), "42\tit\\'s\n")
        # the Rust crate sends multipart/form-data with `query` and `param_*` fields
        boundary = "----abc123"
        fields = [("query", "SELECT {x:UInt32} * 2, {s:String}"), ("param_x", "21"),
                  ("param_s", 'a "b" c')]
        body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                       for k, v in fields) + f"--{boundary}--\r\n"
        status, _, out = self.ch.req(
            body=body.encode(), params={"default_format": "JSONCompactEachRow"},
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self.assertEqual((status, json.loads(out)), (200, [42, 'a "b" c']))

    def test_insert_rowbinary_chunked(self):
        rows = [(i, f"s{i}") for i in range(5000)]
        status, h, _ = self.ch.req("INSERT INTO kv(a,s) FORMAT RowBinary", row_binary(rows),
                                   chunked=True)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(h["x-clickhouse-summary"])["written_rows"], "5000")
        # RowBinaryWithNamesAndTypes (the crate's default with validation)
        rbwnat = b"\x02\x01a\x01s\x06UInt32\x06String" + row_binary([(99999, "last")])
        status, _, body = self.ch.req("INSERT INTO kv(a,s) FORMAT RowBinaryWithNamesAndTypes",
                                      rbwnat, chunked=True)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.ch.q("SELECT count(), sum(a), max(s) FROM kv"),
                         f"5001\t{sum(range(5000)) + 99999}\ts999\n")
        # the whole INSERT in the body; data begins after FORMAT name + one newline
        self.ch.req(body=b"INSERT INTO kv FORMAT TSV\n100001\tone\n")
        self.ch.req(body=b"INSERT INTO kv VALUES (100002, 'format x')")
        self.assertEqual(self.ch.q("SELECT s FROM kv WHERE a > 100000 ORDER BY a"),
                         "one\nformat x\n")

    def test_insert_decompress(self):
        # the crate's own test vector (clickhouse-0.15.3 compression/lz4 it_compresses)
        vector = bytes([245, 5, 222, 235, 225, 158, 59, 108, 225, 31, 65, 215, 66, 66, 36, 92,
                        130, 34, 0, 0, 0, 23, 0, 0, 0, 240, 8, 1, 0, 2, 255, 255, 255, 255, 0,
                        1, 1, 1, 115, 6, 83, 116, 114, 105, 110, 103, 3, 97, 98, 99])
        h = CityHash128(vector[16:])
        self.assertEqual(struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF), vector[:16])
        rows = [(i, "x" * (i % 7)) for i in range(20000)]
        data = row_binary(rows)
        for method in (0x82, 0x02):
            status, _, body = self.ch.req("INSERT INTO kv(a,s) FORMAT RowBinary",
                                          native_blocks(data, method, 50000),
                                          params={"decompress": "1"}, chunked=True)
            self.assertEqual(status, 200, body)
        self.assertEqual(self.ch.q("SELECT count(), sum(a) FROM kv"),
                         f"40000\t{2 * sum(range(20000))}\n")
        bad = bytearray(native_blocks(data))
        bad[40] ^= 0xFF
        status, h, body = self.ch.req("INSERT INTO kv(a,s) FORMAT RowBinary", bytes(bad),
                                      params={"decompress": "1"})
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (500, "40"))
        self.assertRegex(body, rb"^Code: 40\. DB::Exception: Checksum doesn't match.*\(CHECKSUM_DOESNT_MATCH\)")
        self.assertEqual(self.ch.q("SELECT count() FROM kv"), "40000\n")

    def test_lz4_response(self):
        plain = self.ch.req(body=b"SELECT number FROM numbers(100000)")
        self.assertNotIn("content-encoding", plain[1])
        status, h, body = self.ch.req(body=b"SELECT number FROM numbers(100000)",
                                      headers={"Accept-Encoding": "lz4"})
        self.assertEqual(h["content-encoding"], "lz4")
        self.assertEqual(body[:4], b"\x04\x22\x4d\x18")  # LZ4 frame magic
        self.assertEqual(lz4.frame.decompress(body), plain[2])

    def test_errors(self):
        status, h, body = self.ch.req(body=b"SELEC 1")
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (400, "62"))
        self.assertRegex(body, rb"^Code: 62\. DB::Exception: Syntax error.*\(SYNTAX_ERROR\) "
                               rb"\(version [\d.]+ \(official build\)\)\n$")
        status, h, body = self.ch.req(body=b"SELECT * FROM nosuch")
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (404, "60"))
        self.assertTrue(body.startswith(b"Code: 60. DB::Exception: "))
        status, h, body = self.ch.req("INSERT INTO kv(a,s) FORMAT RowBinary", b"\x01\x02")
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (500, "33"))
        self.assertEqual(self.ch.q("SELECT 1"), "1\n")  # the session is still usable

    def test_insert_deduplication_token(self):
        w = "SETTINGS non_replicated_deduplication_window = 1000"
        self.ch.q(f"CREATE TABLE raw (st String, v Float64) ENGINE = MergeTree ORDER BY st {w}")
        self.ch.q(f"CREATE TABLE s_agg (st String, n UInt64, v Float64) ENGINE = SummingMergeTree ORDER BY st {w}")
        self.ch.q(f"CREATE TABLE a_agg (st String, mx AggregateFunction(max, Float64), "
                  f"n AggregateFunction(count)) ENGINE = AggregatingMergeTree ORDER BY st {w}")
        self.ch.q("CREATE MATERIALIZED VIEW s_mv TO s_agg AS SELECT st, count() n, sum(v) v FROM raw GROUP BY st")
        self.ch.q("CREATE MATERIALIZED VIEW a_mv TO a_agg AS SELECT st, maxState(v) mx, countState() n FROM raw GROUP BY st")

        def insert(csv, **settings):
            status, _, body = self.ch.req("INSERT INTO raw FORMAT CSV", csv.encode(),
                                          params=dict(settings, deduplicate_blocks_in_dependent_materialized_views="1"))
            self.assertEqual(status, 200, body)

        def state(st):
            return self.ch.q(f"SELECT (SELECT count() FROM raw WHERE st = '{st}'), "
                             f"(SELECT sum(n) FROM s_agg WHERE st = '{st}'), "
                             f"(SELECT countMerge(n) FROM a_agg WHERE st = '{st}')")

        insert("A,1\nA,2\n", insert_deduplication_token="t1")
        insert("A,5\n", insert_deduplication_token="t1")  # same token, other data: dropped
        self.assertEqual(state("A"), "2\t2\t2\n")
        insert("A,5\n", insert_deduplication_token="t2")
        self.assertEqual(state("A"), "3\t3\t3\n")
        # no token: an identical block is dropped too (hash of the block)...
        insert("B,1\n")
        insert("B,1\n")
        self.assertEqual(state("B"), "1\t1\t1\n")
        # ...unless deduplication is disabled for the insert
        insert("B,1\n", deduplicate_insert="disable")
        self.assertEqual(state("B"), "2\t2\t2\n")


    def _mv_chain(self, prefix):
        """{prefix}_src -> {prefix}_copy_mv -> {prefix}_copy -> {prefix}_check_mv (throws
        on a = 5) -> {prefix}_checked; every table with a deduplication window."""
        w = "ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 100"
        self.ch.q(f"CREATE TABLE {prefix}_src (a UInt32, s String) {w}")
        self.ch.q(f"CREATE TABLE {prefix}_copy (a UInt32, s String) {w}")
        self.ch.q(f"CREATE TABLE {prefix}_checked (a UInt32, s String, chk UInt8) {w}")
        self.ch.q(f"CREATE MATERIALIZED VIEW {prefix}_copy_mv TO {prefix}_copy "
                  f"AS SELECT a, s FROM {prefix}_src")
        self.ch.q(f"CREATE MATERIALIZED VIEW {prefix}_check_mv TO {prefix}_checked "
                  f"AS SELECT a, s, throwIf(a = 5) AS chk FROM {prefix}_copy")

        def insert(rows, sql=f"INSERT INTO {prefix}_src(a,s) FORMAT RowBinary", **settings):
            """Like the Rust crate: query in the URL, settings as URL parameters,
            chunked body of native LZ4 blocks (decompress=1)."""
            return self.ch.req(sql, native_blocks(row_binary(rows)), chunked=True,
                               params=dict(settings, decompress="1"))

        def state():
            """[count, sum(a)] of the source, the copy and the checked target."""
            tables = ("src", "copy", "checked")
            out = self.ch.q("SELECT " + ", ".join(
                f"(SELECT [count(), sum(a)] FROM {prefix}_{t}) AS {t}" for t in tables)
                + " FORMAT JSONEachRow SETTINGS output_format_json_quote_64bit_integers = 0")
            return json.loads(out)

        return insert, state

    def test_insert_mv_failure_is_reported(self):
        """An exception in a materialized view fails the INSERT as on a ClickHouse
        server (chdb's send_insert() reported success and the MV rows were lost)."""
        insert, state = self._mv_chain("mvf")
        rows = [(i, f"s{i}") for i in range(1, 9)]
        dedup = {"insert_deduplication_token": "batch-1",
                 "deduplicate_blocks_in_dependent_materialized_views": "1"}
        status, h, body = insert(rows, **dedup)
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (500, "395"), body)
        self.assertEqual(h["content-type"], "text/plain; charset=UTF-8")
        self.assertRegex(body, rb"^Code: 395\. DB::Exception: Value passed to 'throwIf' function is "
                               rb"non-zero.*\(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO\) "
                               rb"\(version [\d.]+ \(official build\)\)\n$")
        # No rollback, as in ClickHouse: the source table and the MV that ran before
        # the failing one keep the rows; the failing MV's target has none.
        self.assertEqual(state(), {"src": [8, 36], "copy": [8, 36], "checked": [0, 0]})
        # A retry with the same token while the MV still throws: same error, nothing doubled.
        status, h, _ = insert(rows, **dedup)
        self.assertEqual((status, h["x-clickhouse-exception-code"]), (500, "395"))
        self.assertEqual(state(), {"src": [8, 36], "copy": [8, 36], "checked": [0, 0]})

        # Fix the MV, retry with the same token: the source and the copy deduplicate
        # the block, the target that missed it gets it, exactly once.
        self.ch.q("DROP VIEW mvf_check_mv")
        self.ch.q("CREATE MATERIALIZED VIEW mvf_check_mv TO mvf_checked "
                  "AS SELECT a, s, 0 AS chk FROM mvf_copy")
        status, _, body = insert(rows, **dedup)
        self.assertEqual(status, 200, body)
        self.assertEqual(state(), {"src": [8, 36], "copy": [8, 36], "checked": [8, 36]})
        self.assertEqual(self.ch.q("SELECT uniqExact(a) FROM mvf_checked"), "8\n")
        # again, with the token in the statement's SETTINGS clause: still exactly once
        status, _, body = insert(rows, sql="INSERT INTO mvf_src(a,s) SETTINGS "
                                 "insert_deduplication_token = 'batch-1' FORMAT RowBinary")
        self.assertEqual(status, 200, body)
        self.assertEqual(state(), {"src": [8, 36], "copy": [8, 36], "checked": [8, 36]})

    def test_insert_with_mvs_that_do_not_throw(self):
        insert, state = self._mv_chain("mvok")
        status, h, body = insert([(i, "x") for i in (1, 2, 3, 4, 6)],
                                 insert_deduplication_token="ok-1")
        self.assertEqual(status, 200, body)
        self.assertNotIn("x-clickhouse-exception-code", h)
        self.assertEqual(state(), {"src": [5, 16], "copy": [5, 16], "checked": [5, 16]})
        # written_rows counts the MV targets' rows too, as on a server
        self.assertEqual(json.loads(h["x-clickhouse-summary"])["written_rows"], "15")

class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="chdb_http_test_")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_persistence_across_restart(self):
        data_dir = os.path.join(self.tmp, "db")
        ch = Adapter(data_dir)
        ch.q("CREATE TABLE p (a UInt32, s String) ENGINE = MergeTree ORDER BY a "
             "SETTINGS non_replicated_deduplication_window = 100")
        ch.req("INSERT INTO p FORMAT RowBinary", row_binary([(1, "a"), (2, "b")]),
               params={"insert_deduplication_token": "tok"})
        self.assertEqual(ch.stop(), 0)
        ch = Adapter(data_dir)
        try:
            self.assertEqual(ch.q("SELECT count(), sum(a) FROM p"), "2\t3\n")
            # the deduplication log survives the restart as well
            ch.req("INSERT INTO p FORMAT RowBinary", row_binary([(3, "c")]),
                   params={"insert_deduplication_token": "tok"})
            self.assertEqual(ch.q("SELECT count() FROM p"), "2\n")
        finally:
            self.assertEqual(ch.stop(), 0)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            p = subprocess.run([sys.executable, ADAPTER, "--port", str(port), "--data-dir",
                                os.path.join(self.tmp, "db")], capture_output=True, timeout=60, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"address already in use", p.stderr)
        self.assertNotIn(b"listening", p.stdout)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory, name):
    """A CA (name.pem, name.key) and a server certificate for 127.0.0.1/localhost that it
    signed (name-server.pem, name-server.key), made with the openssl CLI."""
    ca, ca_key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    cert, key = os.path.join(directory, f"{name}-server.pem"), os.path.join(directory, f"{name}-server.key")
    csr = os.path.join(directory, f"{name}-server.csr")
    ext = os.path.join(directory, f"{name}-server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class HardeningTest(unittest.TestCase):
    """The guard rails of ADAPTER.md: loopback by default, no file or network access from
    SQL, no cross-origin requests, capped bodies, and HTTPS for clients' TLS tests."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chdb_http_test_")
        cls.ch = Adapter(os.path.join(cls.tmp, "db"), host=(),
                         extra=("--max-request-bytes", "10000", "--max-decompressed-bytes", "50000"))
        cls.ch.q("CREATE TABLE kv (a UInt32, s String) ENGINE = MergeTree ORDER BY a")

    @classmethod
    def tearDownClass(cls):
        cls.ch.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.ch.q("TRUNCATE TABLE kv")

    def refused(self, status, headers, body, code="497"):
        self.assertEqual(headers.get("x-clickhouse-exception-code"), code, body)
        self.assertIn(status, (403, 413), body)

    def test_listens_on_loopback_unless_told_otherwise(self):
        self.assertTrue(self.ch.listening.startswith("chdb-http listening on http://127.0.0.1:"),
                        self.ch.listening)
        p = subprocess.run([sys.executable, ADAPTER, "--host", "0.0.0.0", "--port", str(free_port()),
                            "--data-dir", os.path.join(self.tmp, "other")], check=False, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--allow-remote", p.stderr)
        self.assertNotIn(b"listening", p.stdout)

    def test_file_and_network_table_functions_are_refused(self):
        for sql in ["SELECT * FROM file('/etc/passwd', 'LineAsString')",
                    "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')",
                    "select * from S3 ('http://127.0.0.1:1/b/k', 'CSV')",
                    "INSERT INTO FUNCTION file('out.csv', 'CSV', 'a UInt32') SELECT 1",
                    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
                    "SELECT 1 INTO OUTFILE '/tmp/chdb-http-out.txt'",
                    "CREATE TABLE f (a UInt8) ENGINE = File(CSV)",
                    "SELECT * FROM executable('ls', 'TSV', 'a String')",
                    "SELECT 1 FROM kv WHERE a IN (SELECT 1 FROM /* x */ url ('http://x', CSV))"]:
            with self.subTest(sql=sql):
                self.refused(*self.ch.req(body=sql.encode()))
        # the same words as data, in identifiers or in inserted rows are fine
        self.assertEqual(self.ch.q("SELECT 'file(1)', length('url(x)') AS `url(`"), "file(1)\t6\n")
        self.ch.req("INSERT INTO kv FORMAT TSV", b"1\tfile('/etc/passwd')\n")
        self.assertEqual(self.ch.q("SELECT s FROM kv"), "file(\\'/etc/passwd\\')\n")
        self.assertEqual(self.ch.q("SELECT cutURLParameter('http://a/?x=1', 'x')"), "http://a/?\n")

    def test_cross_origin_requests_are_refused(self):
        for headers in [{"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}]:
            with self.subTest(headers=headers):
                self.refused(*self.ch.req(body=b"SELECT 1", headers=headers))
                self.ch.conn.close()  # the adapter closes after a refusal
        same = {"Origin": f"http://127.0.0.1:{self.ch.port}"}
        self.assertEqual(self.ch.req(body=b"SELECT 1", headers=same)[2], b"1\n")
        self.assertEqual(self.ch.req(body=b"SELECT 1")[2], b"1\n")

    def refused_upload(self, *args, **kwargs):
        """An oversized upload is refused: with code 229, or, when the client is still
        sending as the adapter answers and closes (a loaded CI machine once), by the closed
        connection; no row may land either way (checked after)."""
        try:
            self.refused(*self.ch.req(*args, **kwargs), code="229")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.ch.conn.close()

    def test_request_and_decompressed_bodies_are_capped(self):
        big = b"1\tx\n" * 4000  # 16000 bytes > --max-request-bytes 10000
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                self.refused_upload("INSERT INTO kv FORMAT TSV", big, chunked=chunked)
        bomb = b"0" * 200_000  # compresses to a few hundred bytes, expands past 50000
        for headers, body, params in [
                ({"Content-Encoding": "gzip"}, gzip.compress(bomb), {}),
                ({"Content-Encoding": "lz4"}, lz4.frame.compress(bomb), {}),
                ({}, native_blocks(bomb), {"decompress": "1"})]:
            with self.subTest(headers=headers, params=params):
                self.assertLess(len(body), 10000)
                params = dict(params, query="INSERT INTO kv FORMAT TSV")
                self.refused_upload(body=body, headers=headers, params=params)
        self.assertEqual(self.ch.q("SELECT count() FROM kv"), "0\n")
        small = gzip.compress(b"7\tok\n")
        status, _, out = self.ch.req("INSERT INTO kv FORMAT TSV", small, headers={"Content-Encoding": "gzip"})
        self.assertEqual(status, 200, out)
        self.assertEqual(self.ch.q("SELECT a, s FROM kv"), "7\tok\n")


class TlsTest(unittest.TestCase):
    """--tls-cert/--tls-key serve HTTPS with a CA the test makes; --tls-client-ca also
    requires a client certificate."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="chdb_http_test_")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ca, self.cert, self.key = make_ca(self.tmp, "ca")
        self.other_ca, _, _ = make_ca(self.tmp, "other")

    def context(self, ca, client=False):
        ctx = ssl.create_default_context(cafile=ca)
        if client:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def test_https_with_the_right_ca_only(self):
        ch = Adapter(os.path.join(self.tmp, "db"), extra=("--tls-cert", self.cert, "--tls-key", self.key),
                     tls_context=self.context(self.ca))
        try:
            self.assertTrue(ch.listening.startswith("chdb-http listening on https://"), ch.listening)
            self.assertEqual(ch.q("SELECT 1"), "1\n")
            wrong = http.client.HTTPSConnection("127.0.0.1", ch.port, timeout=10,
                                                context=self.context(self.other_ca))
            with self.assertRaises(ssl.SSLCertVerificationError):
                wrong.request("POST", "/", body=b"SELECT 1")
            plain = http.client.HTTPConnection("127.0.0.1", ch.port, timeout=10)
            with self.assertRaises((ConnectionError, http.client.HTTPException)):
                plain.request("POST", "/", body=b"SELECT 1")
                plain.getresponse().read()
            self.assertEqual(ch.q("SELECT 2"), "2\n", "still serving after failed handshakes")
        finally:
            self.assertEqual(ch.stop(), 0)

    def test_client_certificate_required(self):
        ch = Adapter(os.path.join(self.tmp, "db"),
                     extra=("--tls-cert", self.cert, "--tls-key", self.key, "--tls-client-ca", self.ca),
                     tls_context=self.context(self.ca, client=True))
        try:
            self.assertEqual(ch.q("SELECT 1"), "1\n")
            anonymous = http.client.HTTPSConnection("127.0.0.1", ch.port, timeout=10,
                                                    context=self.context(self.ca))
            with self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                anonymous.request("POST", "/", body=b"SELECT 1")
                anonymous.getresponse().read()
        finally:
            self.assertEqual(ch.stop(), 0)


if __name__ == "__main__":
    unittest.main()
