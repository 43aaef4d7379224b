"""A private CA (trustme) and the certificates tests need, in every encoding libcurl reads."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from functools import cached_property

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

SERVER_NAMES = ("127.0.0.1", "::1", "localhost", "tls.test", "first.test", "second.test")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class ClientCert:
    """One client certificate and its key as PEM, DER and password-protected P12."""

    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes
    key_der: bytes
    p12: bytes
    p12_password: str
    subject: str


class Pki:
    """``ca`` signs a server certificate for ``SERVER_NAMES`` and one client certificate."""

    def __init__(self, *server_names: str) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert(*(server_names or SERVER_NAMES))

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def server_context(
        self,
        *,
        client_certs: bool = False,
        alpn: tuple[str, ...] = ("http/1.1",),
        max_version: ssl.TLSVersion | None = None,
        min_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        if client_certs:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        context.set_alpn_protocols(list(alpn))
        if max_version is not None:
            context.maximum_version = max_version
        if min_version is not None:
            context.minimum_version = min_version
        return context

    @cached_property
    def client(self) -> ClientCert:
        issued = self.ca.issue_cert("client.test")
        cert_pem = issued.cert_chain_pems[0].bytes()
        key_pem = issued.private_key_pem.bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        password = "p12-secret"
        p12 = pkcs12.serialize_key_and_certificates(
            b"client",
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
        return ClientCert(
            cert_pem=cert_pem,
            key_pem=key_pem,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            key_der=key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            p12=p12,
            p12_password=password,
            subject="client.test",
        )
