"""Certificates and kubeconfig for the lab API, shaped like K3s's.

K3s keeps separate CAs for serving and for client certificates, issues the admin
client certificate as ``system:admin`` in group ``system:masters``, and writes a
kubeconfig whose cluster, user and context are all named ``default``. The lab does
the same, and keeps the PKI in a state directory so a restarted server (a K3s
restart) keeps its CA while a wiped one (a reinstall) gets a new one.
"""
from __future__ import annotations

import base64
import os
import re
import ssl
import tempfile
from pathlib import Path
from typing import Any, Iterable

import trustme
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

DEFAULT_SANS = ("127.0.0.1", "localhost", "kubernetes", "kubernetes.default")
ADMIN_USER = "system:admin"
ADMIN_GROUP = "system:masters"

_FILES = ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key", "serving.crt",
          "serving.key", "client-admin.crt", "client-admin.key")


class LabPki:
    """A serving CA + certificate and a client CA + admin certificate (PEM bytes)."""

    def __init__(self, server_ca: trustme.CA, client_ca: trustme.CA, sans: Iterable[str]):
        self._server_ca, self._client_ca = server_ca, client_ca
        self.sans = tuple(dict.fromkeys(sans))
        self.ca_pem = server_ca.cert_pem.bytes()
        self.client_ca_pem = client_ca.cert_pem.bytes()
        serving = server_ca.issue_cert(*self.sans, common_name="k3s")
        self.server_cert_pem = serving.cert_chain_pems[0].bytes()
        self.server_key_pem = serving.private_key_pem.bytes()
        self.admin_cert_pem, self.admin_key_pem = self.issue_client_cert(ADMIN_USER, (ADMIN_GROUP,))

    @classmethod
    def create(cls, sans: Iterable[str] = ()) -> "LabPki":
        """Fresh CAs and certificates valid for ``DEFAULT_SANS`` plus ``sans`` (IPs or DNS names)."""
        return cls(trustme.CA(), trustme.CA(), (*DEFAULT_SANS, *sans))

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike, sans: Iterable[str] = ()) -> "LabPki":
        """Reuse the CAs found in ``directory`` (else create them) and write every file there.

        The serving certificate is reissued on each start so new ``sans`` take effect,
        as K3s does when ``--tls-san`` changes.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        all_sans = (*DEFAULT_SANS, *sans)
        if (d / "server-ca.key").exists() and (d / "client-ca.key").exists():
            server_ca = trustme.CA.from_pem((d / "server-ca.crt").read_bytes(), (d / "server-ca.key").read_bytes())
            client_ca = trustme.CA.from_pem((d / "client-ca.crt").read_bytes(), (d / "client-ca.key").read_bytes())
            pki = cls(server_ca, client_ca, all_sans)
        else:
            pki = cls(trustme.CA(), trustme.CA(), all_sans)
        pki.write(d)
        return pki

    def write(self, directory: str | os.PathLike) -> None:
        """Write CA, serving and admin files (keys mode 0600) into ``directory``."""
        d = Path(directory)
        contents = (self.ca_pem, self._server_ca.private_key_pem.bytes(), self.client_ca_pem,
                    self._client_ca.private_key_pem.bytes(), self.server_cert_pem, self.server_key_pem,
                    self.admin_cert_pem, self.admin_key_pem)
        for name, data in zip(_FILES, contents):
            _write_private(d / name, data)

    def issue_client_cert(self, user: str, groups: Iterable[str] = ()) -> tuple[bytes, bytes]:
        """A client certificate (PEM cert, PEM key) for ``user``; the API reads the user from its CN."""
        groups = tuple(groups)
        # cryptography >= 44 refuses a SubjectAlternativeName without names, which trustme
        # writes when no identity is given: name the client in a DNS SAN too (the API reads the CN).
        san = re.sub(r"[^a-z0-9-]+", "-", user.lower()).strip("-") + ".client.lab"
        leaf = self._client_ca.issue_cert(san, common_name=user, organization_name=groups[0] if groups else None)
        return leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()

    def server_ssl_context(self) -> ssl.SSLContext:
        """TLS context for the server: serving cert, optional client certs checked against the client CA."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            chain = Path(tmp) / "serving.pem"
            chain.write_bytes(self.server_key_pem + self.server_cert_pem)
            ctx.load_cert_chain(str(chain))
        ctx.load_verify_locations(cadata=self.client_ca_pem.decode())
        # Optional: bearer-token clients present no certificate.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def kubeconfig(self, server_url: str, name: str = "default") -> dict[str, Any]:
        """A kubeconfig with the CA and admin credentials inline, named like K3s's (``default``)."""
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": name, "cluster": {"certificate-authority-data": b64(self.ca_pem),
                                                      "server": server_url}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [{"name": name, "user": {"client-certificate-data": b64(self.admin_cert_pem),
                                                "client-key-data": b64(self.admin_key_pem)}}],
        }


def write_kubeconfig(path: str | os.PathLike, pki: LabPki, server_url: str, name: str = "default") -> Path:
    """Write ``pki.kubeconfig(server_url, name)`` to ``path`` with mode 0600; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _write_private(p, yaml.safe_dump(pki.kubeconfig(server_url, name), sort_keys=False).encode())
    return p


def cert_user(der: bytes | None) -> tuple[str, tuple[str, ...]] | None:
    """``(user, groups)`` from a verified client certificate (CN and O), as Kubernetes reads them."""
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not cns:
        return None
    return str(cns[0].value), tuple(str(o.value) for o in orgs)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)
