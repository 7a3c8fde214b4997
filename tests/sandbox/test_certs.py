"""The local CA and server certificate: issued once, reused while valid, reissued near expiry."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509

from cxone_eventbridge.sandbox.certs import RENEW_BEFORE, VALIDITY, ensure_certificates


def test_issues_a_ca_and_a_server_certificate_for_loopback_names(tmp_path: Path) -> None:
    """The server certificate is signed by the CA and names 127.0.0.1, ::1 and localhost."""
    paths = ensure_certificates(tmp_path / "certs")
    ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_private_key_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    """key.pem is written with mode 0600."""
    paths = ensure_certificates(tmp_path)
    assert paths.key.stat().st_mode & 0o777 == 0o600


def test_files_load_into_an_ssl_context(tmp_path: Path) -> None:
    """The PEM files are what the ssl module expects for a server and for a client trusting the CA."""
    paths = ensure_certificates(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(paths.cert, paths.key)
    client = ssl.create_default_context(cafile=str(paths.ca))
    assert client.cert_store_stats()["x509_ca"] == 1


def test_valid_certificates_are_reused(tmp_path: Path) -> None:
    """A second call keeps the same files, so a client trusting ca.pem keeps trusting the receiver."""
    first = ensure_certificates(tmp_path)
    before = first.ca.read_bytes(), first.cert.read_bytes(), first.key.read_bytes()
    second = ensure_certificates(tmp_path)
    assert (second.ca.read_bytes(), second.cert.read_bytes(), second.key.read_bytes()) == before


def test_certificates_near_expiry_are_reissued(tmp_path: Path) -> None:
    """When the certificate would expire within RENEW_BEFORE, a fresh set replaces it."""
    paths = ensure_certificates(tmp_path)
    old_ca = paths.ca.read_bytes()
    later = dt.datetime.now(dt.UTC) + VALIDITY - RENEW_BEFORE + dt.timedelta(hours=1)
    ensure_certificates(tmp_path, now=later)
    assert paths.ca.read_bytes() != old_ca


def test_a_broken_set_is_reissued_and_no_temporary_files_remain(tmp_path: Path) -> None:
    """A corrupt certificate is replaced, and the atomic writes leave no temporary files behind."""
    paths = ensure_certificates(tmp_path)
    paths.cert.write_text("not a certificate")
    ensure_certificates(tmp_path)
    x509.load_pem_x509_certificate(paths.cert.read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
