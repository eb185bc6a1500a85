"""How every client of the project connects: one Kafka configuration, the registry's TLS and
credentials, and ``redacted`` for every URL that may be shown.

The worker (Faust), the dead-letter readers, the CLI, provisioning, the traffic generator and
the benchmark all take their Kafka client arguments from ``kafka_connection(settings)``, so a
cluster that needs TLS or SASL is configured once, in the settings. The TLS context reads its
files once per process and is cached: the entry points build it before their event loop runs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import SecretStr

from karrot_streams.redaction import redacted

if TYPE_CHECKING:
    from karrot_streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "KafkaConnection",
    "KafkaMisconfigured",
    "as_connection",
    "check_kafka",
    "kafka_connection",
    "redacted",
    "tls_context",
]


def tls_context(
    *,
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: SecretStr | None,
    check_hostname: bool,
) -> ssl.SSLContext:
    """A client TLS context: the system's CAs or ``cafile``, an optional client certificate."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if certfile is not None:
        context.load_cert_chain(
            str(certfile),
            str(keyfile) if keyfile else None,
            key_password.get_secret_value() if key_password else None,
        )
    # Turned off only on request (a broker reached by an address its certificate does not
    # name); the certificate is still verified against the CAs.
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    ssl_context: ssl.SSLContext | None = None
    #: The files behind ``ssl_context``, for clients that take paths (librdkafka).
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (consumer, producer, admin)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = (
                self.password.get_secret_value() if self.password else None
            )
        return kwargs

    def faust_credentials(self) -> faust.auth.Credentials | None:
        """Faust's ``broker_credentials`` (None for plaintext)."""
        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context,
            )
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context)
        return None

    def librdkafka_config(self) -> dict[str, Any]:
        """The same connection for librdkafka (confluent-kafka), as the tests' producers use."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            if self.cafile is not None:
                config["ssl.ca.location"] = str(self.cafile)
            if self.certfile is not None:
                config["ssl.certificate.location"] = str(self.certfile)
            if self.keyfile is not None:
                config["ssl.key.location"] = str(self.keyfile)
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.check_hostname else "none"
            )
        if self.uses_sasl:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.username
            config["sasl.password"] = self.password.get_secret_value() if self.password else None
        return config

    def __repr__(self) -> str:
        # Never the password (a dataclass repr would show the SecretStr masked, but be explicit).
        return (
            f"KafkaConnection({self.bootstrap!r}, {self.security_protocol}, "
            f"mechanism={self.sasl_mechanism}, username={self.username!r})"
        )


def kafka_connection(settings: Settings) -> KafkaConnection:
    """The one Kafka connection of ``settings`` (built once per process and configuration)."""
    return _connection(
        settings.kafka_bootstrap,
        settings.kafka_security_protocol,
        settings.kafka_sasl_mechanism,
        settings.kafka_sasl_username,
        settings.kafka_sasl_password,
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
        settings.kafka_ssl_key_password,
        settings.kafka_ssl_check_hostname,
    )


@lru_cache(maxsize=8)
def _connection(
    bootstrap: str,
    protocol: str,
    mechanism: str | None,
    username: str | None,
    password: SecretStr | None,
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: SecretStr | None,
    check_hostname: bool,
) -> KafkaConnection:
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = tls_context(
            cafile=cafile,
            certfile=certfile,
            keyfile=keyfile,
            key_password=key_password,
            check_hostname=check_hostname,
        )
    return KafkaConnection(
        bootstrap=bootstrap,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        username=username,
        password=password,
        ssl_context=context,
        cafile=cafile,
        certfile=certfile,
        keyfile=keyfile,
        check_hostname=check_hostname,
    )


def registry_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The registry client's TLS context when a CA bundle or client certificate is set."""
    if settings.schema_registry_ca_file is None and settings.schema_registry_cert_file is None:
        return None  # httpx's defaults (certifi) for an https URL
    return tls_context(
        cafile=settings.schema_registry_ca_file,
        certfile=settings.schema_registry_cert_file,
        keyfile=settings.schema_registry_key_file,
        key_password=None,
        check_hostname=True,
    )


def as_connection(kafka: str | KafkaConnection) -> KafkaConnection:
    """A connection from a plain bootstrap list (plaintext, as tests and tools on the local
    stack pass it) or as it is."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(bootstrap=kafka)


class KafkaMisconfigured(RuntimeError):
    """The brokers answer, but refuse this client's security settings: no retry will help."""


async def check_kafka(kafka: KafkaConnection, timeout_s: float = 10.0) -> None:
    """Fail fast, with the variables to fix, when the first broker refuses how we connect.

    A wrong password, an untrusted certificate or a plaintext client on a TLS listener is a
    configuration error: it raises ``KafkaMisconfigured`` instead of letting every client retry
    forever with "Unable to bootstrap". A broker that does not answer at all is an outage, not
    a configuration error: that returns, and the worker waits for it as for any outage.
    """
    first = kafka.bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    where = f"Kafka at {first}"
    kwargs = {k: v for k, v in kafka.client_kwargs().items() if k != "bootstrap_servers"}
    try:
        async with asyncio.timeout(timeout_s):
            conn = await create_conn(
                host, int(port), request_timeout_ms=int(timeout_s * 1000), **kwargs
            )
            try:
                await conn.send(MetadataRequest([]))
            finally:
                conn.close()
    except SaslAuthenticationFailed as exc:
        raise KafkaMisconfigured(
            f"{where} refused the SASL credentials of user {kafka.username!r} "
            f"({kafka.sasl_mechanism}): check KARROT_KAFKA_SASL_USERNAME, "
            f"KARROT_KAFKA_SASL_PASSWORD and KARROT_KAFKA_SASL_MECHANISM ({exc})"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise KafkaMisconfigured(
            f"{where} presented a certificate this client does not trust ({exc.verify_message}):"
            " set KARROT_KAFKA_SSL_CAFILE to the CA that signed it"
            " (or KARROT_KAFKA_SSL_CHECK_HOSTNAME=false if it names another host)"
        ) from exc
    except ssl.SSLError as exc:
        raise KafkaMisconfigured(
            f"TLS with {where} failed ({exc}): is KARROT_KAFKA_SECURITY_PROTOCOL="
            f"{kafka.security_protocol} what this listener speaks?"
        ) from exc
    except KafkaConnectionError as exc:
        if kafka.ssl_context is None:
            # Connected, then dropped at the first request: the listener wants a TLS handshake.
            raise KafkaMisconfigured(
                f"{where} closed the connection of a {kafka.security_protocol} client: the "
                "listener probably wants TLS (KARROT_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL)"
            ) from exc
        log.warning("%s dropped the connection check: %s", where, exc)
    except (OSError, TimeoutError) as exc:
        log.warning("%s does not answer yet (%s); waiting for it as for any outage", where, exc)
