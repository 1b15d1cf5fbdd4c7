"""K3s join tokens: ``K10<sha256 of the cluster CA>::server:<secret>``.

The secure ("full") form pins the cluster CA: a joining node fetches ``/cacerts``,
hashes it and refuses a server whose CA differs. That is how an agent holding the token
of a previous cluster fails against a rebuilt server. A bare token is only the secret.
Pure code: parsing, building and checking.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "K10"


@dataclass(frozen=True, repr=False)
class Token:
    """A parsed token. ``ca_hash`` is empty for a bare token."""

    ca_hash: str
    username: str
    password: str

    def __repr__(self) -> str:  # never show the secret
        return f"Token(ca_hash={self.ca_hash[:12]}..., username={self.username}, password=***)"

    @property
    def secure(self) -> bool:
        return bool(self.ca_hash)

    def full(self, ca_hash: str | None = None) -> str:
        return f"{TOKEN_PREFIX}{ca_hash or self.ca_hash}::{self.username}:{self.password}"


class TokenError(ValueError):
    """The token text is malformed."""


def parse_token(text: str, default_user: str = "server") -> Token:
    """Parse a full ``K10...::user:secret`` token or a bare secret."""
    text = text.strip()
    if not text:
        raise TokenError("token is empty")
    if text.startswith(TOKEN_PREFIX) and "::" in text:
        ca_hash, _, creds = text[len(TOKEN_PREFIX):].partition("::")
        user, sep, password = creds.partition(":")
        if not sep or not user or not password or len(ca_hash) != 64:
            raise TokenError("invalid token format")
        return Token(ca_hash, user, password)
    return Token("", default_user, text)


def ca_hash(ca_pem: bytes) -> str:
    """The hash a full token carries: sha256 of the CA bundle bytes served at ``/cacerts``."""
    return hashlib.sha256(ca_pem).hexdigest()


def new_secret() -> str:
    return secrets.token_hex(16)


def server_token(ca_pem: bytes, given: str = "") -> Token:
    """The cluster token a server writes: the given one (its secret part) or a new one."""
    secret = parse_token(given).password if given else new_secret()
    return Token(ca_hash(ca_pem), "server", secret)


def accepts(password: str, *cluster_secrets: str) -> bool:
    """True if ``password`` equals one of the server's secrets (constant-time compare)."""
    return any(s and hmac.compare_digest(password.encode(), s.encode()) for s in cluster_secrets)


def ca_mismatch_message(token: Token, served_ca_pem: bytes) -> str:
    """The agent's error when the pinned CA differs, or ``""`` when it matches."""
    got = ca_hash(served_ca_pem)
    if not token.secure or hmac.compare_digest(token.ca_hash, got):
        return ""
    return f"token CA hash does not match the Cluster CA certificate hash: {token.ca_hash} != {got}"
