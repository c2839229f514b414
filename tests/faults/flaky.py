"""A fault-injecting HTTP proxy for mcp-credd's outage tests (127.0.0.1 only).

usage: flaky.py UPSTREAM_BASE MODE_FILE
Prints `READY <port>` once listening. For each request it reads MODE_FILE:
  pass       forward to UPSTREAM_BASE and relay the answer
  500 / 503  that status with a small JSON body
  429        429 with Retry-After: 1
  html       200 with an HTML maintenance page
  truncated  200 with a cut-off JSON body
  hang       accept, read, never answer (until the client gives up)
  down       close the connection without answering
"""
import http.client
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
MODE_FILE = sys.argv[2]


def mode():
    try:
        with open(MODE_FILE) as f:
            return f.read().strip() or "pass"
    except FileNotFoundError:
        return "pass"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length", 0) or 0)
        body = self.rfile.read(length) if length else b""
        m = mode()
        if m == "down":
            self.close_connection = True
            self.connection.close()
            return
        if m == "hang":
            time.sleep(30)
            self.close_connection = True
            return
        if m in ("500", "503"):
            return self._answer(int(m), b'{"error":"server_error"}')
        if m == "429":
            return self._answer(429, b'{"error":"slow_down"}', extra=[("Retry-After", "1")])
        if m == "html":
            return self._answer(200, b"<html><body>Down for maintenance</body></html>", "text/html")
        if m == "truncated":
            return self._answer(200, b'{"access_token":"eyJhbGciOi')
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = _handle
    do_POST = _handle

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
print(f"READY {srv.server_address[1]}", flush=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
