"""Atlassian's accessible-resources endpoint, stood in for on 127.0.0.1 for the site-id tests.

usage: accessible_resources.py MODE_FILE SEEN_FILE
Prints `READY <port>`. GET /oauth/token/accessible-resources reads MODE_FILE: `ok` answers one
site; anything else (or no file) answers 503. The Authorization header of each request is
appended to SEEN_FILE, so a test can check which token was sent.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE_FILE, SEEN_FILE = sys.argv[1], sys.argv[2]
SITES = [{"id": "1324a887-45db-1bf4-1e99-ef0ff456d421", "name": "acme",
          "url": "https://acme.atlassian.net", "scopes": ["read:jira-work"]}]


def mode():
    try:
        with open(MODE_FILE) as f:
            return f.read().strip()
    except FileNotFoundError:
        return "fail"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with open(SEEN_FILE, "a") as f:
            f.write((self.headers.get("Authorization") or "-") + "\n")
        if self.path != "/oauth/token/accessible-resources":
            status, body = 404, b'{"error":"not found"}'
        elif mode() == "ok":
            status, body = 200, json.dumps(SITES).encode()
        else:
            status, body = 503, b'{"error":"unavailable"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing its kept-alive connection is not an error worth printing.
        pass


server = Server(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
