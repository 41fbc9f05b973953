#!/usr/bin/env python3
"""ClickHouse HTTP interface over the real ClickHouse engine embedded in chdb (PyPI `chdb-core`).

Debian's clickhouse-server is too old for projections; chdb runs current ClickHouse in-process. This adapter
speaks enough of the HTTP interface for the `clickhouse` Rust crate (0.15, Compression::None):

- query in the URL `query=` parameter, in the body, or both (URL part first, then the body, as ClickHouse does);
  multipart/form-data bodies (the crate sends those when `param_*` are set) are decoded;
- `database`, `default_format` and `param_*` are honoured; other parameters are settings, applied with SET for
  that one query and reset afterwards; HTTP-only parameters (compression, wait_end_of_query, ...) are ignored;
- `INSERT ... FORMAT X` with data in the body runs as `INSERT ... FROM INFILE` from a temporary file;
- errors are HTTP 500 with the exception text and `X-ClickHouse-Exception-Code`;
- HTTP/1.1 with Content-Length and keep-alive; chunked request bodies are decoded;
- `X-ClickHouse-Summary` carries read_rows/read_bytes (rows read from storage), result_rows and elapsed_ns;
- with `--query-log FILE`, every query received (before it runs, also the refused ones) is appended to FILE as one
  JSON line `{"query": ..., "params": {...}}`, so tests can prove what was, and was not, sent.

One chdb session serves all requests, guarded by a lock (the engine is not re-entrant through one session).
"""

import argparse
import json
import os
import re
import signal
import tempfile
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

# Parameters that shape the HTTP exchange rather than the query: accepted and ignored.
HTTP_ONLY = {
    "wait_end_of_query", "compress", "decompress", "enable_http_compression", "http_zlib_compression_level",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "query_id", "session_id",
    "session_timeout", "session_check", "user", "password", "quota_key", "buffer_size", "role",
    "http_native_compression_disable_checksumming_on_decompress", "output_format_binary_write_json_as_string",
}
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INSERT_WITH_FORMAT = re.compile(r"^\s*(INSERT\s+INTO\s+.*?)\s+FORMAT\s+([A-Za-z0-9_]+)\s*$", re.I | re.S)
ERROR_CODE = re.compile(r"Code:\s*(\d+)")
UNESCAPE = {"\\": "\\", "'": "'", "t": "\t", "n": "\n", "0": "\0", "b": "\b", "r": "\r", "f": "\f"}


def unescape_param(value):
    """Query parameters arrive in ClickHouse's escaped text form; chdb wants the plain value."""
    return re.sub(r"\\(.)", lambda m: UNESCAPE.get(m.group(1), m.group(1)), value, flags=re.S)


class Engine:
    def __init__(self, path):
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()
        self.tmp = tempfile.mkdtemp(prefix="chdb-http-insert-")

    def run(self, sql, fmt, database, settings, params, data):
        with self.lock:
            applied = []
            try:
                self.session.query(f"USE `{database}`" if database else "USE default", "TabSeparated")
                for name, value in settings.items():
                    self.session.query(f"SET {name} = {sql_literal(value)}", "TabSeparated")
                    applied.append(name)
                if data:
                    return self.insert_from_file(sql, data)
                return self.session.query(sql, fmt, params=params or None)
            finally:
                for name in applied:
                    self.session.query(f"SET {name} = DEFAULT", "TabSeparated")

    def insert_from_file(self, sql, data):
        m = INSERT_WITH_FORMAT.match(sql)
        if not m:
            raise ValueError("adapter: data in the body needs a query `INSERT INTO ... FORMAT <format>`")
        fd, path = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return self.session.query(f"{m.group(1)} FROM INFILE '{path}' FORMAT {m.group(2)}", "TabSeparated")
        finally:
            os.unlink(path)


def sql_literal(value):
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK adds ~40 ms per reply.
    disable_nagle_algorithm = True
    engine = None
    query_log = None
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):
        if os.environ.get("CHDB_HTTP_LOG"):
            super().log_message(fmt, *args)

    def do_GET(self):
        self.handle_query()

    def do_POST(self):
        self.handle_query()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_query(self):
        try:
            body = self.read_body()
        except (ValueError, OSError) as e:
            return self.reply(400, f"adapter: bad request body: {e}\n".encode(), {})
        url = urlsplit(self.path)
        if url.path in ("/ping",) or (url.path == "/" and not url.query and not body and self.command == "GET"):
            return self.reply(200, b"Ok.\n", {})
        fields = dict(parse_qsl(url.query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
            for part in msg.iter_parts():
                fields[part.get_param("name", header="content-disposition")] = part.get_content()
            body = b""
        try:
            sql, fmt, database, settings, params, data = split_request(fields, body)
            self.log_query(sql, params)
            result = self.engine.run(sql, fmt, database, settings, params, data)
        except Exception as e:  # the engine raises its own types; all become the ClickHouse error reply
            text = str(e)
            code = ERROR_CODE.search(text)
            headers = {"X-ClickHouse-Exception-Code": code.group(1) if code else "1001"}
            return self.reply(500, (text.rstrip("\n") + "\n").encode(), headers)
        summary = {
            "read_rows": str(result.storage_rows_read()),
            "read_bytes": str(result.storage_bytes_read()),
            "written_rows": str(result.rows_written()),
            "result_rows": str(result.rows_read()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        self.reply(200, result.bytes(), {"X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":"))})

    def log_query(self, sql, params):
        if not self.query_log:
            return
        line = json.dumps({"query": sql, "params": params}) + "\n"
        with self.log_lock, open(self.query_log, "a", encoding="utf-8") as f:
            f.write(line)

    def reply(self, status, payload, headers):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)


def split_request(fields, body):
    """Returns (sql, format, database, settings, params, insert data) as ClickHouse would read the request."""
    url_query = fields.pop("query", None)
    data = b""
    if url_query is not None and body and url_query.lstrip()[:6].upper() == "INSERT":
        sql, data = url_query, body
    elif url_query is not None:
        sql = url_query + ("\n" + body.decode() if body else "")
    else:
        sql = body.decode()
    if not sql.strip():
        raise ValueError("Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
    fmt = fields.pop("default_format", "TabSeparated")
    database = fields.pop("database", "")
    if database and not SETTING_NAME.match(database):
        raise ValueError(f"Code: 81. DB::Exception: Database {database} does not exist. (UNKNOWN_DATABASE)")
    params, settings = {}, {}
    for name, value in fields.items():
        if name.startswith("param_"):
            params[name[len("param_"):]] = unescape_param(value)
        elif name not in HTTP_ONLY:
            if not SETTING_NAME.match(name):
                raise ValueError(f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)")
            settings[name] = value
    return sql, fmt, database, settings, params, data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8123)
    ap.add_argument("--data", default=None, help="chdb data directory (default: a temporary one)")
    ap.add_argument("--query-log", default=None, help="append every query received to this file (JSON lines)")
    args = ap.parse_args()
    Handler.engine = Engine(args.data)
    Handler.query_log = args.query_log
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"chdb_http listening on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
