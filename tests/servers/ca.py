"""A throw-away certificate authority for the private servers and the TLS tests.

``TestCA`` wraps trustme: one CA whose PEM file clients trust (``ca_file``), one
server certificate for every name a client may use to reach the loopback
servers, and on demand the bad certificates that TLS tests need: expired, issued
for another host name, self-signed, and issued by a CA nobody trusts. Every
certificate is written as PEM files (certificate chain, key, and both in one
file) into the CA's directory, readable by the unprivileged server accounts.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

# Names the good server certificate covers: how tests reach the loopback servers.
SERVER_NAMES = ("localhost", "127.0.0.1", "127.0.0.2", "::1", "mail.test", "mx.mail.test",
                "mx1.mail.test", "mx2.mail.test", "imap.mail.test", "smtp.mail.test")
WRONG_HOST = "wrong.example"


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one server certificate."""

    cert_file: Path  # leaf certificate followed by any intermediates
    key_file: Path  # private key
    combined_file: Path  # key followed by the chain (for servers that want one file)
    sha256: str  # hex SHA-256 of the leaf certificate's DER form (for pinning tests)

    def server_context(self) -> ssl.SSLContext:
        """A server-side SSLContext presenting this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _fingerprint(cert_pem: bytes) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    return hashlib.sha256(der).hexdigest()


def _write(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


class TestCA:
    """A test CA writing its files into ``directory`` (created if missing)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o755)
        self._ca = trustme.CA(organization_name="mailtool test CA")
        self.ca_file = self.directory / "ca.pem"
        _write(self.ca_file, self._ca.cert_pem.bytes(), 0o644)
        self.server = self._save("server", self._ca.issue_cert(*SERVER_NAMES))
        self._extra: dict[str, CertFiles] = {}

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    def client_context(self) -> ssl.SSLContext:
        """A verifying client SSLContext that trusts this CA only."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return context

    def server_context(self) -> ssl.SSLContext:
        """A server SSLContext presenting the good server certificate."""
        return self.server.server_context()

    def issue(self, label: str, *names: str, expired: bool = False) -> CertFiles:
        """Issue (once per label) a certificate for ``names`` from this CA."""
        if label in self._extra:
            return self._extra[label]
        if expired:
            now = datetime.datetime.now(datetime.UTC)
            leaf = self._ca.issue_cert(*names, not_before=now - datetime.timedelta(days=30),
                                       not_after=now - datetime.timedelta(days=1))
        else:
            leaf = self._ca.issue_cert(*names)
        files = self._save(label, leaf)
        self._extra[label] = files
        return files

    def expired(self) -> CertFiles:
        """A certificate for the loopback names that expired yesterday."""
        return self.issue("expired", *SERVER_NAMES, expired=True)

    def wrong_host(self, hostname: str = WRONG_HOST) -> CertFiles:
        """A valid certificate from this CA, but for ``hostname`` only."""
        return self.issue(f"wrong-host-{hostname}", hostname)

    def untrusted(self) -> CertFiles:
        """A certificate for the loopback names issued by another CA that no client trusts."""
        if "untrusted" not in self._extra:
            other = trustme.CA(organization_name="mailtool untrusted CA")
            self._extra["untrusted"] = self._save("untrusted", other.issue_cert(*SERVER_NAMES))
        return self._extra["untrusted"]

    def self_signed(self) -> CertFiles:
        """A self-signed certificate for the loopback names (its own issuer, no CA)."""
        if "self-signed" not in self._extra:
            cert_pem, key_pem = _self_signed_pem(SERVER_NAMES)
            self._extra["self-signed"] = self._save_pem("self-signed", cert_pem, key_pem)
        return self._extra["self-signed"]

    def _save(self, label: str, leaf: trustme.LeafCert) -> CertFiles:
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return self._save_pem(label, chain, leaf.private_key_pem.bytes())

    def _save_pem(self, label: str, chain_pem: bytes, key_pem: bytes) -> CertFiles:
        cert_file = self.directory / f"{label}.pem"
        key_file = self.directory / f"{label}.key"
        combined = self.directory / f"{label}.combined.pem"
        # Keys stay readable by the unprivileged server accounts: these are test keys.
        _write(cert_file, chain_pem, 0o644)
        _write(key_file, key_pem, 0o644)
        _write(combined, key_pem + chain_pem, 0o644)
        first = chain_pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
        return CertFiles(cert_file, key_file, combined, _fingerprint(first))


def _self_signed_pem(names: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A self-signed leaf certificate built with cryptography (trustme's own dependency)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem
