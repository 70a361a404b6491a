#!/usr/bin/env python3
"""Local OAuth2 authorization server for the sds-sync XOAUTH2 tests (scripts/services/mail-oauth2.sh).

Two listeners on 127.0.0.1 (standard library only):
  TOKEN_PORT  HTTPS  POST /token: the client-credentials grant (RFC 6749 section 4.4) as Microsoft
                     Entra ID answers it: form fields grant_type, client_id, client_secret (or HTTP
                     Basic), scope -> {"token_type": "Bearer", "expires_in": N, "access_token": ...}.
                     Errors are RFC 6749 JSON bodies (invalid_client 401, invalid_scope 400, ...).
                     Each token issued also updates ISSUED_FILE ({"<client_id>": n}, written
                     atomically), so tests can count token requests.
  INTROSPECT_PORT HTTP POST /introspect (RFC 7662), for Dovecot's oauth2 passdb: token=... ->
                     {"active": true, "username": "<mailbox>", ...} while the token is unexpired.

CLIENTS_FILE holds one client per line: client_id secret mailbox lifetime_secs scope.
"""

import base64
import json
import os
import secrets
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
clients = {}
with open(os.environ["CLIENTS_FILE"], encoding="utf-8") as f:
    for line in f:
        parts = line.split()
        if len(parts) == 5 and not parts[0].startswith("#"):
            cid, secret, mailbox, lifetime, scope = parts
            clients[cid] = {"secret": secret, "mailbox": mailbox, "lifetime": int(lifetime), "scope": scope}

lock = threading.Lock()
tokens = {}  # access_token -> (mailbox, expires_at, client_id)
issued = {}  # client_id -> count


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Every read and the TLS handshake are bounded: a client that stalls holds one thread only.
    timeout = 15

    def setup(self):
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            # Here in the connection's thread, not in accept() (see serve()).
            self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):  # one line per request, no secrets (bodies are not logged)
        print(f"{self.address_string()} {fmt % args}", flush=True)

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 65536:
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def do_GET(self):
        return self.reply(404, {"error": "not_found"})

    def do_POST(self):
        form = self.form()
        if form is None:
            return self.reply(413, {"error": "invalid_request"})
        if self.server.kind == "token" and self.path == "/token":
            return self.token(form)
        if self.server.kind == "introspect" and self.path == "/introspect":
            return self.introspect(form)
        return self.reply(404, {"error": "not_found"})

    def token(self, form):
        if form.get("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type",
                                    "error_description": "only client_credentials is supported"})
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                cid, secret = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw)
            except ValueError:
                pass
        client = clients.get(cid or "")
        if client is None or not secrets.compare_digest(client["secret"], secret or ""):
            return self.reply(401, {"error": "invalid_client",
                                    "error_description": "AADSTS7000215: Invalid client secret provided."})
        if form.get("scope") != client["scope"]:
            return self.reply(400, {"error": "invalid_scope",
                                    "error_description": f"AADSTS70011: The provided scope {form.get('scope')!r} is not valid."})
        token = secrets.token_urlsafe(32)
        with lock:
            tokens[token] = (client["mailbox"], time.time() + client["lifetime"], cid)
            issued[cid] = issued.get(cid, 0) + 1
            tmp = os.environ["ISSUED_FILE"] + ".tmp"
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump(issued, out)
            os.replace(tmp, os.environ["ISSUED_FILE"])
        return self.reply(200, {"token_type": "Bearer", "expires_in": client["lifetime"],
                                "ext_expires_in": client["lifetime"], "access_token": token})

    def introspect(self, form):
        with lock:
            entry = tokens.get(form.get("token", ""))
        if entry is None or entry[1] < time.time():
            return self.reply(200, {"active": False})
        mailbox, expires_at, cid = entry
        return self.reply(200, {"active": True, "username": mailbox, "client_id": cid,
                                "exp": int(expires_at), "token_type": "Bearer"})


def serve(port, kind, context=None):
    server = ThreadingHTTPServer((HOST, port), Handler)
    server.kind = kind
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
serve(int(os.environ["TOKEN_PORT"]), "token", ctx)
serve(int(os.environ["INTROSPECT_PORT"]), "introspect")
print(f"token endpoint https://{HOST}:{os.environ['TOKEN_PORT']}/token, "
      f"introspection http://{HOST}:{os.environ['INTROSPECT_PORT']}/introspect", flush=True)
threading.Event().wait()
