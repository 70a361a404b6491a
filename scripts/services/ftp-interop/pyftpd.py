"""pyftpdlib FTPS server for the sds-sync interoperability tests (scripts/services/ftp-interop.sh).

Explicit FTPS required on control and data connections, one virtual user, 127.0.0.1 only.
pyftpdlib (over pyOpenSSL) closes a data connection without sending a TLS close_notify when a
listing is done: the case a client must tolerate for an empty or cut listing.
"""

import os

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer


def main() -> None:
    with open(os.environ["FTP_PASSWORD_FILE"], encoding="ascii") as f:
        password = f.read().strip()
    authorizer = DummyAuthorizer()
    authorizer.add_user(os.environ["FTP_USER"], password, os.environ["FTP_ROOT"], perm="elradfmwMT")
    handler = TLS_FTPHandler
    handler.authorizer = authorizer
    handler.certfile = os.environ["FTP_CERT"]
    handler.keyfile = os.environ["FTP_KEY"]
    handler.tls_control_required = True
    handler.tls_data_required = True
    handler.passive_ports = range(int(os.environ["FTP_PASV_MIN"]), int(os.environ["FTP_PASV_MAX"]) + 1)
    handler.permit_foreign_addresses = False
    server = FTPServer(("127.0.0.1", int(os.environ["FTP_PORT"])), handler)
    server.max_cons = 64
    server.serve_forever()


if __name__ == "__main__":
    main()
