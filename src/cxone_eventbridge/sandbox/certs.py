"""A local certificate authority and a server certificate for 127.0.0.1, ::1 and localhost.

The receiver serves real HTTPS so that deliveries exercise the same TLS path as production; clients trust
it through ``CXONE_CA_BUNDLE`` / ``--ca-bundle`` pointing at ``ca.pem``. Every file is written atomically
(a temporary file renamed into place), and ``ca.pem`` last, so a reader that sees ``ca.pem`` sees a
complete set. The CA's private key is never written: a fresh set is issued when the old one is unusable.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALIDITY = dt.timedelta(days=365)
# Reissue before expiry so that a long demo never meets an expired certificate.
RENEW_BEFORE = dt.timedelta(days=7)
HOSTNAMES = ("localhost",)
IP_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class CertPaths:
    """Where the CA certificate, the server certificate and its private key live."""

    ca: Path
    cert: Path
    key: Path


def _write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _usable(paths: CertPaths, now: dt.datetime) -> bool:
    """True when the existing files form a complete set that stays valid for a while."""
    try:
        ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject or cert.public_key() != key.public_key():
        return False
    return all(c.not_valid_after_utc - RENEW_BEFORE > now for c in (ca, cert))


def _issue(now: dt.datetime) -> tuple[bytes, bytes, bytes]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cxeb local receiver CA")])
    start = now - dt.timedelta(minutes=5)  # tolerate small clock differences between processes
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in HOSTNAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        server_cert.public_bytes(serialization.Encoding.PEM),
        key_pem,
    )


def ensure_certificates(directory: Path, *, now: dt.datetime | None = None) -> CertPaths:
    """Reuse the certificates in ``directory`` when they are still good, or issue a fresh set."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(ca=directory / CA_FILE, cert=directory / CERT_FILE, key=directory / KEY_FILE)
    current = now or dt.datetime.now(dt.UTC)
    if _usable(paths, current):
        return paths
    ca_pem, cert_pem, key_pem = _issue(current)
    _write_atomically(paths.key, key_pem, mode=0o600)
    _write_atomically(paths.cert, cert_pem)
    _write_atomically(paths.ca, ca_pem)
    return paths
