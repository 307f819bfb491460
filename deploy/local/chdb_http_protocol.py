"""The ClickHouse HTTP-protocol pieces of chdb_http.py that do not touch chdb: errors in
ClickHouse's format (code, message, HTTP status), the guard that refuses statements
reaching files or the network, decoding of request bodies (ClickHouse compressed blocks,
multipart/form-data, Content-Encoding) under the body caps, and response content types.

Why a separate module: they are pure functions of their arguments, and keeping them out
of chdb_http.py keeps the server (the shared chdb session, the request handler, main)
short enough to read in one sitting. chdb_http.py imports them; it is run as a script,
so this file is found next to it on sys.path (see ADAPTER.md).
"""
import re
import struct
import zlib

import lz4.block
import lz4.frame
from clickhouse_cityhash.cityhash import CityHash128

ERROR_RE = re.compile(r"Code: (\d+)\. (?:DB::)?\w*Exception: (.*)", re.S)
# Table functions, engines and clauses that read or write the server's files or reach the
# network: with no access control here, any of them would give a caller the rights of the
# user running the adapter. Matched as `name(` (functions, engines) or as keywords, outside
# string literals and comments, case-insensitively.
FORBIDDEN_FUNCTIONS = (
    "file", "fileCluster", "url", "urlCluster", "s3", "s3Cluster", "gcs", "oss", "cosn",
    "hdfs", "hdfsCluster", "azureBlobStorage", "azureBlobStorageCluster", "remote",
    "remoteSecure", "cluster", "clusterAllReplicas", "mysql", "postgresql", "jdbc", "odbc",
    "mongodb", "redis", "sqlite", "executable", "executablePool", "iceberg", "icebergS3",
    "icebergAzure", "icebergHDFS", "icebergLocal", "deltaLake", "deltaLakeLocal", "hudi",
    "python", "URL", "File", "S3", "HDFS", "Kafka",
    "RabbitMQ", "NATS", "MaterializedPostgreSQL", "MaterializedMySQL", "Distributed",
)
FORBIDDEN_CALL_RE = re.compile(
    r"(?<![\w.$])(" + "|".join(sorted({f.lower() for f in FORBIDDEN_FUNCTIONS}, key=len, reverse=True))
    + r")\s*\(", re.I)
FORBIDDEN_CLAUSE_RE = re.compile(r"\b(INTO\s+OUTFILE|FROM\s+INFILE)\b", re.I)
# String literals, quoted identifiers and comments, blanked before the checks above.
SQL_NOISE_RE = re.compile(r"'(?:[^'\\]|\\.|'')*'|`(?:[^`]|``)*`|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
# Defaults of the body caps (--max-request-bytes, --max-decompressed-bytes).
MAX_REQUEST_BYTES = 256 << 20
MAX_DECOMPRESSED_BYTES = 1 << 30
# ClickHouse's exceptionCodeToHTTPStatus() (src/Server/HTTP/), by error code; else 500.
HTTP_STATUS = {194: 401, **dict.fromkeys((192, 193, 497, 512, 516), 403),
               **dict.fromkeys((6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123,
                                167, 168, 223, 321, 376, 427, 441, 675, 676), 400),
               **dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511), 404),
               229: 413, 48: 501, 76: 503, 209: 503, 439: 503, 381: 411, 159: 408, 779: 415}


class CHError(Exception):
    """An error reported to the client in ClickHouse's format."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message

    @classmethod
    def from_exception(cls, exc):
        text = str(exc)
        m = ERROR_RE.search(text)  # chdb: "... Code: 60. DB::Exception: msg. (NAME)"
        if not m:
            return cls(1001, f"{text}. (STD_EXCEPTION)")
        msg = re.sub(r"\s*\(version [^()]*\)\s*$", "", m.group(2).strip())
        return cls(int(m.group(1)), msg)

    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)


def check_statement(sql):
    """Refuse SQL that would touch the server's files or the network (see
    FORBIDDEN_FUNCTIONS); only the statement text, not INSERT data, is checked."""
    text = SQL_NOISE_RE.sub(" ", sql)
    m = FORBIDDEN_CALL_RE.search(text) or FORBIDDEN_CLAUSE_RE.search(text)
    if m:
        raise CHError(497, f"{m.group(1).strip()} is refused by chdb-http: it reads or writes files or "
                           "the network with the adapter's rights, and the adapter has no access "
                           "control (ADAPTER.md). (ACCESS_DENIED)")


def too_large(what, limit):
    return CHError(229, f"{what} is larger than chdb-http's limit of {limit} bytes "
                        "(--max-request-bytes / --max-decompressed-bytes). (QUERY_IS_TOO_LARGE)")


def decode_native_blocks(buf, limit=MAX_DECOMPRESSED_BYTES):
    """Undo `decompress=1`: a sequence of ClickHouse compressed blocks, each
    [16-byte CityHash128 of the rest][method u8][compressed size u32 incl. 9-byte
    header][uncompressed size u32][payload]. The declared sizes are checked against
    `limit` before anything is decompressed."""
    out, pos, total = [], 0, 0
    while pos < len(buf):
        if len(buf) - pos < 25:
            raise CHError(33, "Cannot read all data: truncated compressed block header. (CANNOT_READ_ALL_DATA)")
        method = buf[pos + 16]
        csize, usize = struct.unpack_from("<II", buf, pos + 17)
        total += usize
        if total > limit:
            raise too_large("The decompressed body", limit)
        block = buf[pos + 16:pos + 16 + csize]
        if csize < 9 or len(block) != csize:
            raise CHError(33, f"Cannot read all data: compressed block of {csize} bytes is truncated. (CANNOT_READ_ALL_DATA)")
        h = CityHash128(block)
        expected = struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)
        actual = buf[pos:pos + 16]
        if expected != actual:
            raise CHError(40, f"Checksum doesn't match: corrupted data. Reference: {expected.hex()}. "
                              f"Actual: {actual.hex()}. Size of compressed block: {csize}. (CHECKSUM_DOESNT_MATCH)")
        if method == 0x82:  # LZ4 block
            out.append(lz4.block.decompress(block[9:], uncompressed_size=usize))
            if len(out[-1]) != usize:
                raise CHError(40, "Decompressed size does not match the block header. (CHECKSUM_DOESNT_MATCH)")
        elif method == 0x02:  # NONE
            out.append(block[9:])
        else:
            raise CHError(89, f"Unknown compression method: 0x{method:02x}. (UNKNOWN_COMPRESSION_METHOD)")
        pos += 16 + csize
    return b"".join(out)


def parse_multipart(body, content_type):
    """Fields of a multipart/form-data body (the Rust crate sends `query` + `param_*` this way)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise CHError(36, "multipart/form-data without boundary. (BAD_ARGUMENTS)")
    fields = {}
    for part in body.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if not name or b"filename=" in head:
            raise CHError(48, "External data (multipart files) is not supported by chdb-http. (NOT_IMPLEMENTED)")
        fields[name.group(1).decode()] = value[:-2] if value.endswith(b"\r\n") else value
    return fields


def decompress_capped(body, encoding, limit):
    """Undo Content-Encoding, never producing more than `limit` bytes (a small
    compressed body can expand to gigabytes)."""
    if encoding in ("gzip", "deflate"):
        d = zlib.decompressobj(47)  # 47: auto-detect gzip/zlib header
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise too_large("The decompressed body", limit)
        return out
    if encoding == "lz4":
        d = lz4.frame.LZ4FrameDecompressor()
        out = d.decompress(body, max_length=limit + 1)
        if len(out) > limit:
            raise too_large("The decompressed body", limit)
        if not d.eof:
            raise CHError(33, "Cannot read all data: truncated LZ4 frame. (CANNOT_READ_ALL_DATA)")
        return out
    raise CHError(89, f"Unsupported Content-Encoding: {encoding}. (UNKNOWN_COMPRESSION_METHOD)")


def content_type_for(fmt):
    f = fmt.lower()
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "names" in f else "absent")
    if f.startswith("json") or f == "prettyjsoneachrow":
        return ("application/x-ndjson" if "eachrow" in f or f in ("jsonlines", "ndjson")
                else "application/json") + "; charset=UTF-8"
    if f.startswith(("rowbinary", "native", "parquet", "arrow", "orc", "avro", "protobuf",
                     "msgpack", "capnproto", "npy", "bson")):
        return "application/octet-stream"
    if f == "xml":
        return "application/xml; charset=UTF-8"
    return "text/plain; charset=UTF-8"

