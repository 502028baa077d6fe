"""A throwaway certificate authority for the simulator's HTTPS token endpoint.

azure-identity and MSAL accept only https authorities, so the token endpoint needs a certificate the client
trusts. The CA lives for one simulator run; its PEM is written to a temporary file (`bundle_path`) that is removed
on `close()`. The file also carries certifi's public roots, so pointing REQUESTS_CA_BUNDLE / SSL_CERT_FILE at it for
a whole process does not break that process's other TLS connections.
"""

from __future__ import annotations

import os
import ssl
import tempfile

import certifi
import trustme


class ThrowawayCA:
    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="graphlake simulator (throwaway)")
        self._leaf = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        handle, self.bundle_path = tempfile.mkstemp(prefix="graphlake-simulator-ca-", suffix=".pem")
        with os.fdopen(handle, "wb") as out:
            out.write(self._ca.cert_pem.bytes())
            with open(certifi.where(), "rb") as roots:
                out.write(b"\n" + roots.read())

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._leaf.configure_cert(context)
        return context

    def close(self) -> None:
        try:
            os.unlink(self.bundle_path)
        except FileNotFoundError:
            pass
