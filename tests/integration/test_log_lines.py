"""Logs cannot be forged (SPEC §15.6): a real attempt whose libcurl error carries a newline.

The target's certificate, signed by a CA the task trusts, has no subject alternative name and
a common name with a newline and a forged record in it; libcurl quotes that name in its error
text, which the server logs in the attempt's line.
"""

from __future__ import annotations

import datetime
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .server import ServerProcess
from .targets import ServerThread
from .targets.http import RecordingServer
from .targets.tls import Pki, b64

FORGED = "level=CRITICAL msg=forged"
LINE_START = re.compile(r"\d{4}-\d\d-\d\dT\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


def _forging_context(pki: Pki, folder: Path) -> ssl.SSLContext:
    """A server context whose certificate's only name is ``evil\\n<FORGED>``."""
    ca_key = serialization.load_pem_private_key(pki.ca.private_key_pem.bytes(), None)
    issuer = x509.load_pem_x509_certificate(pki.ca_pem).subject
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"evil\n{FORGED}")]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.fixture
def forging_target(tmp_path: Path) -> Iterator[tuple[Pki, RecordingServer]]:
    pki = Pki()
    thread = ServerThread()
    target = thread.run(RecordingServer(ssl_context=_forging_context(pki, tmp_path)).start())
    try:
        yield pki, target
    finally:
        thread.run(target.stop())
        thread.close()


def test_a_certificate_name_with_a_newline_cannot_start_a_log_line(
    tmp_path: Path, forging_target: tuple[Pki, RecordingServer]
) -> None:
    pki, target = forging_target
    with (
        ServerProcess(tmp_path, LOG=1, CIPHER_KEY="log-lines-test-key") as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        owner = http.post("/v1/owners/register", json={"name": "forger"}).json()
        headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        task = http.post(
            "/v1/queues/register",
            headers=headers,
            json={
                "httpRequest": {"url": target.url("/forge"), "method": "GET"},
                "config": {"ca": b64(pki.ca_pem)},
            },
        ).json()
        deadline = time.monotonic() + 30
        while "attempt finished" not in server.output():  # logged after the outcome is stored
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        assert http.get(f"/v1/queues/{task['id']}", headers=headers).json()["state"] == "ERROR"
    lines = server.output().splitlines()
    attempt = [line for line in lines if "attempt finished" in line]
    assert len(attempt) == 1 and FORGED in attempt[0], attempt  # the text is there, escaped
    assert "evil\\nlevel=CRITICAL" in attempt[0]
    # Every line is a record of its own (a traceback's lines would be indented).
    assert all(LINE_START.match(line) or line.startswith("  ") for line in lines), lines
