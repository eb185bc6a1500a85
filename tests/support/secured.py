"""The local stack's SASL_SSL listener (``KARROT_STACK_SECURE=1``): its settings for a worker
or a CLI, and the same connection for the tests' own clients."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import SecretStr

from karrot_streams.connections import KafkaConnection, tls_context

REPO = Path(__file__).resolve().parents[2]


def secured_env(plaintext_bootstrap: str) -> dict[str, str] | None:
    """``KARROT_KAFKA_*`` for the SASL_SSL listener, or None when the stack has none.

    The same defaults as stack/stack.sh: the listener on the plaintext port + 10, the CA in
    ``<stack dir>/tls/ca.pem``, user ``karrot``.
    """
    stack_dir = Path(os.environ.get("KARROT_STACK_DIR", REPO / ".stack"))
    ca = stack_dir / "tls" / "ca.pem"
    host, port = plaintext_bootstrap.split(",", maxsplit=1)[0].rsplit(":", 1)
    secure_port = int(os.environ.get("KARROT_KAFKA_SECURE_PORT", int(port) + 10))
    if not ca.is_file() or not _open(host, secure_port):
        return None
    return {
        "KARROT_KAFKA_BOOTSTRAP": f"{host}:{secure_port}",
        "KARROT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KARROT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KARROT_KAFKA_SASL_USERNAME": os.environ.get("KARROT_STACK_SASL_USER", "karrot"),
        "KARROT_KAFKA_SASL_PASSWORD": os.environ.get(
            "KARROT_STACK_SASL_PASSWORD", "karrot-scram-secret"
        ),
        "KARROT_KAFKA_SSL_CAFILE": str(ca),
    }


def connection_of(env: dict[str, str], *, cafile: Path | None = None) -> KafkaConnection:
    """The tests' own client for ``env`` (``cafile`` None: the CA of ``env``)."""
    ca = cafile if cafile is not None else Path(env["KARROT_KAFKA_SSL_CAFILE"])
    return KafkaConnection(
        bootstrap=env["KARROT_KAFKA_BOOTSTRAP"],
        security_protocol=env["KARROT_KAFKA_SECURITY_PROTOCOL"],
        sasl_mechanism=env["KARROT_KAFKA_SASL_MECHANISM"],
        username=env["KARROT_KAFKA_SASL_USERNAME"],
        password=SecretStr(env["KARROT_KAFKA_SASL_PASSWORD"]),
        ssl_context=tls_context(
            cafile=ca, certfile=None, keyfile=None, key_password=None, check_hostname=True
        ),
        cafile=ca,
    )


def _open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True
