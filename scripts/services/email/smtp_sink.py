#!/usr/bin/env python3
"""Test SMTP sink (aiosmtpd) for the email destination tests.

Stores every accepted message as OUTDIR/<n>.eml (the raw message) + OUTDIR/<n>.json (envelope,
TLS, AUTH login). The .eml is written under a temporary name and renamed, so a polling test never
sees half a message.

Environment (all optional):
  SMTP_HOST=127.0.0.1  SMTP_PORT=2525     plain SMTP with optional/required STARTTLS
  SMTPS_PORT=          if set, also an implicit-TLS (SMTPS) listener on that port
  SMTP_CERT / SMTP_KEY  PEM files; enables STARTTLS (and SMTPS)
  SMTP_REQUIRE_TLS=0|1  1 => refuse MAIL/AUTH before STARTTLS
  SMTP_USER / SMTP_PASS if set, AUTH PLAIN/LOGIN is offered AND required
  SMTP_REJECT=reject    recipients containing this substring get "550" (to test failures)
  SMTP_TEMPFAIL=tempfail recipients containing this substring get "451" (transient failure)
Usage: python smtp_sink.py OUTDIR
"""
import itertools
import json
import os
import pathlib
import signal
import ssl
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/smtp-sink")
out.mkdir(parents=True, exist_ok=True)
host = os.environ.get("SMTP_HOST", "127.0.0.1")
port = int(os.environ.get("SMTP_PORT", "2525"))
smtps_port = os.environ.get("SMTPS_PORT")
user, password = os.environ.get("SMTP_USER"), os.environ.get("SMTP_PASS")
reject = os.environ.get("SMTP_REJECT", "reject")
tempfail = os.environ.get("SMTP_TEMPFAIL", "tempfail")
counter = itertools.count(1)


class SaveHandler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if reject and reject in address:
            return "550 5.1.1 Mailbox unavailable (test reject)"
        if tempfail and tempfail in address:
            return "451 4.3.0 Try again later (test tempfail)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = f"{time.time_ns()}-{next(counter):05d}"
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "peer": list(session.peer) if session.peer else None,
            "tls": session.ssl is not None or (
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None),
            "auth_login": (session.auth_data.login.decode()
                           if isinstance(session.auth_data, LoginPassword) else None),
        }
        # The .json first, then the .eml by rename: a test that sees the .eml finds its .json.
        tmp = out / f".{n}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        (out / f"{n}.json").write_text(json.dumps(meta))
        os.replace(tmp, out / f"{n}.eml")
        return "250 2.0.0 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user and auth_data.password.decode() == password)
    # handled=False: let aiosmtpd send 535 itself (the default handled=True sends no reply and
    # the client hangs until its timeout).
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


tls_ctx = None
if os.environ.get("SMTP_CERT"):
    tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ctx.load_cert_chain(os.environ["SMTP_CERT"], os.environ["SMTP_KEY"])

require_tls = os.environ.get("SMTP_REQUIRE_TLS", "0") == "1"
kw = dict(
    tls_context=tls_ctx,
    require_starttls=require_tls and tls_ctx is not None,
    authenticator=authenticator if user else None,
    auth_required=bool(user),
    auth_require_tls=require_tls,   # False => AUTH also allowed on a plain connection
    data_size_limit=50 * 1024 * 1024,
)
controllers = [Controller(SaveHandler(), hostname=host, port=port, **kw)]
if smtps_port and tls_ctx is not None:
    kw2 = dict(kw, tls_context=None, require_starttls=False, auth_require_tls=False)
    controllers.append(Controller(SaveHandler(), hostname=host, port=int(smtps_port),
                                  ssl_context=tls_ctx, server_hostname="localhost", **kw2))
for c in controllers:
    c.start()
print(f"smtp sink listening on {host}:{port}"
      + (f" and smtps {smtps_port}" if len(controllers) > 1 else "")
      + f", writing to {out}", flush=True)

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
signal.signal(signal.SIGINT, lambda *a: stop.set())
stop.wait()
for c in controllers:
    c.stop()
