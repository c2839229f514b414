#!/usr/bin/env python3
"""A hostile identity server for tests/security.rs, on 127.0.0.1 only.

Prints `READY <port>` once listening. Each path is one misbehaviour; every request is
appended to the file named by $LOG as one JSON line (method, target, headers), so a test
can tell whether a request came straight or through a proxy (absolute-form target).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ESC = "\x1b[31mFORGED\x07\r\n2026-01-01T00:00:00Z  INFO forged log line\x1b]0;title\x07"
BIG = 256 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self):
        log = os.environ.get("LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"method": self.command, "target": self.path,
                                    "headers": dict(self.headers.items())}) + "\n")

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def endless(self, with_length):
        # A token reply that never ends (or claims 256 MiB): JSON that stays open.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if with_length:
            self.send_header("Content-Length", str(BIG))
        self.end_headers()
        head = b'{"access_token":"'
        chunk = b"A" * 65536
        sent = 0
        try:
            self.wfile.write(head)
            while sent < BIG:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.record()
        target = self.path
        if self.headers.get("X-Amz-Target", "") and target.startswith("/big"):
            return self.endless(True)
        if self.headers.get("X-Amz-Target", "").startswith("AWSCognitoIdentityProviderService."):
            # A Cognito API reply the SDK cannot parse, with tokens in it.
            return self.reply(200, '{"AuthenticationResult": {"AccessToken": "LEAKED-ACCESS-TOKEN", '
                              '"RefreshToken": "LEAKED-REFRESH-TOKEN", "ExpiresIn": "soon", "TokenType": 7',
                              "application/x-amz-json-1.1")
        if target.startswith("http://") or target.startswith("https://"):
            # Reached as a proxy: hand out a fake token, as the attacker's proxy did.
            return self.reply(200, json.dumps({"access_token": "PROXY-FAKE-TOKEN", "expires_in": 3600}))
        path = target.split("?")[0]
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if path == "/ok/token":
            return self.reply(200, json.dumps({"access_token": "good-token", "expires_in": 3600}))
        if path == "/big/token":
            return self.endless(True)
        if path == "/chunked/token":
            return self.endless(False)
        if path == "/big/.well-known/openid-configuration":
            return self.endless(True)
        if path in ("/device/auth", "/device-uri/auth"):
            # An escape sequence in the user code (shown escaped), or CR/LF in the
            # verification URI (refused: no URL holds one).
            uri = f"{base}/device" + ("\r\nFORGED" if path == "/device-uri/auth" else "")
            return self.reply(200, json.dumps({
                "device_code": "dc", "user_code": "AB\x1b]0;pwned\x07CD",
                "verification_uri": uri, "expires_in": 2, "interval": 1}))
        prm = "/.well-known/oauth-protected-resource/"
        if path.startswith(prm):
            # An MCP server `/<case>/mcp` whose metadata smuggles escape sequences: into a
            # scope (`prm-scope`), into the authorization server's URL (`issuer`), into its
            # authorization server's scopes (`as-scope`) or token endpoint (`as-endpoint`).
            case = path[len(prm):].split("/")[0]
            doc = {"resource": f"{base}/{case}/mcp", "authorization_servers": [f"{base}/{case}-as"]}
            if case == "prm-scope":
                doc["scopes_supported"] = ["mcp:tools", ESC]
            if case == "issuer":
                doc["authorization_servers"] = [f"{base}/as{ESC}"]
            return self.reply(200, json.dumps(doc))
        asm = "/.well-known/oauth-authorization-server/"
        if path.startswith(asm):
            name = path[len(asm):]
            token = f"{base}/ok/token{ESC}" if name == "as-endpoint-as" else f"{base}/ok/token"
            return self.reply(200, json.dumps({
                "issuer": f"{base}/{name}", "token_endpoint": token,
                "authorization_endpoint": f"{base}/authorize",
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["mcp:tools", ESC] if name == "as-scope-as" else ["mcp:tools"]}))
        if path == "/esc-endpoint/.well-known/openid-configuration":
            return self.reply(200, json.dumps({
                "issuer": f"{base}/esc-endpoint", "token_endpoint": f"{base}/ok/token{ESC}"}))
        if path == "/escape/token":
            return self.reply(400, json.dumps({"error": "invalid_client", "error_description": ESC}))
        if path == "/crlf/token":
            return self.reply(200, json.dumps({"access_token": "abc\r\nX-Injected: 1", "expires_in": 3600}))
        if path == "/space/token":
            return self.reply(200, json.dumps({"access_token": "abc def", "expires_in": 3600}))
        return self.reply(404, "{}")

    def do_CONNECT(self):
        # Reached as an https proxy: note it and refuse the tunnel.
        self.record()
        self.reply(502, "{}")
        self.close_connection = True

    do_GET = handle_any
    do_POST = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
