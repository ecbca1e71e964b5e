"""NKeys and NATS JWTs made in a test: nkey users and operator mode (a memory resolver) for nats-server.

The JWTs are built here from their claims and signed with ``nkeys``. ``nats-jwt`` 0.2.2 from PyPI was
tried first: nats-server 2.15 refuses the account JWTs its ``init_new_operator``/``create_account``
make ("invalid account JWT"), because they carry ``signing_keys`` as a map ``{key: null}`` where the
server expects a list. The claims below are the ones nats-server reads (nats-io/jwt v2: ``type``,
``version``, limits of -1 for "no limit").
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

__all__ = ["Operator", "new_keypair", "write_creds", "write_seed"]

_NO_LIMIT = -1


def new_keypair(prefix: int) -> nkeys.KeyPair:
    """A fresh key pair of a role (``nkeys.PREFIX_BYTE_USER``, ``_ACCOUNT``, ``_OPERATOR``)."""
    return nkeys.from_seed(bytearray(nkeys.encode_seed(os.urandom(32), prefix)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(signer: nkeys.KeyPair, subject: str, name: str, nats: dict[str, Any]) -> str:
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": signer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    claims["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(claims).encode()).digest()).decode().rstrip("=")
    )
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(signer.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


def write_seed(path: Path, keypair: nkeys.KeyPair) -> Path:
    """Write ``keypair``'s seed as a seed file (what ``FASTIOT_NATS_NKEY`` names), owner-only."""
    path.write_bytes(bytes(keypair.seed) + b"\n")
    path.chmod(0o600)
    return path


def write_creds(path: Path, jwt: str, keypair: nkeys.KeyPair) -> Path:
    """Write a ``.creds`` file (user JWT and seed), as ``nsc generate creds`` does."""
    path.write_text(
        f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
        f"************************* IMPORTANT *************************\n"
        f"NKEY Seed printed below can be used to sign and prove identity.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{keypair.seed.decode()}\n------END USER NKEY SEED------\n"
    )
    path.chmod(0o600)
    return path


@dataclass
class Operator:
    """An operator with one account: the nats-server config for it and users of that account."""

    operator: nkeys.KeyPair
    account: nkeys.KeyPair

    @classmethod
    def create(cls) -> Operator:
        return cls(new_keypair(nkeys.PREFIX_BYTE_OPERATOR), new_keypair(nkeys.PREFIX_BYTE_ACCOUNT))

    def server_config(self) -> dict[str, Any]:
        """``extra_config`` for :class:`~fastiot.nats_server.NatsServer`: operator mode, memory resolver."""
        operator_pk = self.operator.public_key.decode()
        account_pk = self.account.public_key.decode()
        operator_jwt = _jwt(self.operator, operator_pk, "test-operator", {"type": "operator"})
        limits = {
            name: _NO_LIMIT for name in ("subs", "data", "payload", "imports", "exports", "conn", "leaf")
        }
        account_jwt = _jwt(
            self.operator,
            account_pk,
            "test-account",
            {"type": "account", "limits": {**limits, "wildcards": True}},
        )
        return {"operator": operator_jwt, "resolver": "MEMORY", "resolver_preload": {account_pk: account_jwt}}

    def user_jwt(self, user: nkeys.KeyPair, name: str = "test-user") -> str:
        """A JWT for ``user`` in the account, with no limits."""
        return _jwt(
            self.account,
            user.public_key.decode(),
            name,
            {
                "type": "user",
                "pub": {},
                "sub": {},
                "subs": _NO_LIMIT,
                "data": _NO_LIMIT,
                "payload": _NO_LIMIT,
            },
        )
