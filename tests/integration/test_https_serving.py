"""PATH_TLS_CERT / PATH_TLS_KEY serve the API over HTTPS."""

import ssl
from pathlib import Path

import httpx
import trustme

from tests.integration.server import ServerProcess


def test_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    env = {"PATH_TLS_CERT": tmp_path / "server.pem", "PATH_TLS_KEY": tmp_path / "server.key"}
    with ServerProcess(tmp_path, verify=client_context, **env) as server:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=client_context) as http:
            assert http.get("/status").text == "OK"
            created = http.post("/v1/owners/register", json={"name": "tls-owner"})
            assert created.status_code == 201
        with httpx.Client(base_url=server.url, verify=True) as untrusting:
            try:
                untrusting.get("/status")
            except httpx.ConnectError as exc:
                assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
            else:
                raise AssertionError("a client without the CA must not connect")
