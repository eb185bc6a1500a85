"""One Kafka connection for every client, the registry's TLS and auth, and ``redacted``."""

from __future__ import annotations

import logging
import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr, ValidationError

from karrot_streams.app import create_app
from karrot_streams.avro import schemas
from karrot_streams.avro.registry import SchemaRegistry
from karrot_streams.avro.schemas import SubjectSchema
from karrot_streams.connections import KafkaConnection, as_connection, kafka_connection
from karrot_streams.monitoring.health import Health
from karrot_streams.redaction import install_log_redaction, redacted
from karrot_streams.settings import Settings

KAFKA_VARIABLES = (
    "KARROT_KAFKA_SECURITY_PROTOCOL",
    "KARROT_KAFKA_SASL_MECHANISM",
    "KARROT_KAFKA_SASL_USERNAME",
    "KARROT_KAFKA_SASL_PASSWORD",
    "KARROT_KAFKA_SSL_CAFILE",
    "KARROT_KAFKA_SSL_CERTFILE",
    "KARROT_KAFKA_SSL_KEYFILE",
    "KARROT_KAFKA_SSL_KEY_PASSWORD",
    "KARROT_KAFKA_SSL_CHECK_HOSTNAME",
    "KARROT_SCHEMA_REGISTRY_USERNAME",
    "KARROT_SCHEMA_REGISTRY_PASSWORD",
    "KARROT_SCHEMA_REGISTRY_CA_FILE",
    "KARROT_SCHEMA_REGISTRY_CERT_FILE",
    "KARROT_SCHEMA_REGISTRY_KEY_FILE",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in KAFKA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KARROT_KAFKA_BOOTSTRAP", "b1:9093,b2:9093")
    monkeypatch.setenv("KARROT_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a client certificate signed by it (openssl), as PEM files."""
    base = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=base)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client", "-keyout", "client.key",
        "-out", "client.csr")  # fmt: skip
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "client.pem")  # fmt: skip
    return {"ca": base / "ca.pem", "client": base / "client.pem", "client_key": base / "client.key"}


def test_plaintext_by_default(env: pytest.MonkeyPatch) -> None:
    kafka = kafka_connection(Settings())
    assert kafka.client_kwargs() == {
        "bootstrap_servers": "b1:9093,b2:9093",
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.faust_credentials() is None
    assert as_connection("h:1").client_kwargs()["bootstrap_servers"] == "h:1"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl(env: pytest.MonkeyPatch, pki: dict[str, Path], mechanism: str) -> None:
    env.setenv("KARROT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("KARROT_KAFKA_SASL_MECHANISM", mechanism)
    env.setenv("KARROT_KAFKA_SASL_USERNAME", "karrot")
    env.setenv("KARROT_KAFKA_SASL_PASSWORD", "s3cret-pw")
    env.setenv("KARROT_KAFKA_SSL_CAFILE", str(pki["ca"]))
    settings = Settings()
    kafka = kafka_connection(settings)
    kwargs = kafka.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "karrot"
    assert kwargs["sasl_plain_password"] == "s3cret-pw"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is True
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    # The same for Faust (every client of the worker), and for librdkafka.
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == mechanism
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context is context
    rd = kafka.librdkafka_config()
    assert rd["security.protocol"] == "sasl_ssl"
    assert rd["sasl.mechanism"] == mechanism
    assert rd["ssl.ca.location"] == str(pki["ca"])
    assert rd["ssl.endpoint.identification.algorithm"] == "https"
    # Never shown: not in the settings' or the connection's repr.
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in repr(kafka)
    used = create_app(settings).conf.broker_credentials
    assert isinstance(used, faust.SASLCredentials)
    assert (used.username, used.password) == ("karrot", "s3cret-pw")
    assert used.mechanism == credentials.mechanism
    assert used.ssl_context is context


def test_mutual_tls(env: pytest.MonkeyPatch, pki: dict[str, Path]) -> None:
    env.setenv("KARROT_KAFKA_SECURITY_PROTOCOL", "SSL")
    env.setenv("KARROT_KAFKA_SSL_CAFILE", str(pki["ca"]))
    env.setenv("KARROT_KAFKA_SSL_CERTFILE", str(pki["client"]))
    env.setenv("KARROT_KAFKA_SSL_KEYFILE", str(pki["client_key"]))
    env.setenv("KARROT_KAFKA_SSL_CHECK_HOSTNAME", "false")
    kafka = kafka_connection(Settings())
    kwargs = kafka.client_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in kwargs
    assert kwargs["ssl_context"].check_hostname is False
    assert kwargs["ssl_context"].verify_mode is ssl.CERT_REQUIRED, "still verified"
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context is kwargs["ssl_context"]
    rd = kafka.librdkafka_config()
    assert rd["ssl.certificate.location"] == str(pki["client"])
    assert rd["ssl.key.location"] == str(pki["client_key"])
    assert rd["ssl.endpoint.identification.algorithm"] == "none"


def test_the_connection_is_built_once(env: pytest.MonkeyPatch, pki: dict[str, Path]) -> None:
    env.setenv("KARROT_KAFKA_SECURITY_PROTOCOL", "SSL")
    env.setenv("KARROT_KAFKA_SSL_CAFILE", str(pki["ca"]))
    # The TLS files are read once: later callers (on the event loop) get the same object.
    assert kafka_connection(Settings()) is kafka_connection(Settings())


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"KARROT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KARROT_KAFKA_SASL_MECHANISM"),
        (
            {
                "KARROT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KARROT_KAFKA_SASL_MECHANISM": "PLAIN",
                "KARROT_KAFKA_SASL_USERNAME": "u",
            },
            "KARROT_KAFKA_SASL_PASSWORD",
        ),
        ({"KARROT_KAFKA_SASL_USERNAME": "u"}, "KARROT_KAFKA_SECURITY_PROTOCOL"),
        ({"KARROT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "kafka_sasl_mechanism"),
        ({"KARROT_KAFKA_SSL_CAFILE": "/etc/hostname"}, "KARROT_KAFKA_SECURITY_PROTOCOL"),
        (
            {"KARROT_KAFKA_SECURITY_PROTOCOL": "SSL", "KARROT_KAFKA_SSL_CAFILE": "/no/such.pem"},
            "KARROT_KAFKA_SSL_CAFILE",
        ),
        (
            {"KARROT_KAFKA_SECURITY_PROTOCOL": "SSL", "KARROT_KAFKA_SSL_KEYFILE": "/etc/hostname"},
            "KARROT_KAFKA_SSL_CERTFILE",
        ),
        ({"KARROT_SCHEMA_REGISTRY_USERNAME": "u"}, "KARROT_SCHEMA_REGISTRY_PASSWORD"),
    ],
)
def test_inconsistent_settings_are_refused_by_name(
    env: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ValidationError, match=named):
        Settings()


def test_registry_basic_auth_and_ca_bundle(env: pytest.MonkeyPatch, pki: dict[str, Path]) -> None:
    env.setenv("KARROT_SCHEMA_REGISTRY_URL", "https://registry.example/apis/ccompat/v7")
    env.setenv("KARROT_SCHEMA_REGISTRY_USERNAME", "api-key")
    env.setenv("KARROT_SCHEMA_REGISTRY_PASSWORD", "api-secret")
    env.setenv("KARROT_SCHEMA_REGISTRY_CA_FILE", str(pki["ca"]))
    app = create_app(Settings())
    client = app.resources.registry._client
    auth = client.client_kwargs["auth"]
    assert auth._auth_header.startswith("Basic ")
    verify = client.client_kwargs["verify"]
    assert isinstance(verify, ssl.SSLContext)
    assert [c["subject"] for c in verify.get_ca_certs()] == [((("commonName", "test-ca"),),)]


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("http://user:secret@registry:8081/apis", "http://user:***@registry:8081/apis"),
        ("https://TOKEN123@registry.example/", "https://***@registry.example/"),
        ("postgresql://karrot:pw@db:5432/karrot", "postgresql://karrot:***@db:5432/karrot"),
        ("https://u:p@ss@host/x", "https://u:***@host/x"),
        (
            "Schema registry unreachable at http://a:b@r:1/x: 401 for url 'http://a:b@r:1/x/s'",
            "Schema registry unreachable at http://a:***@r:1/x: 401 for url 'http://a:***@r:1/x/s'",
        ),
        (
            "postgresql://db/karrot?password=pw&sslmode=require",
            "postgresql://db/karrot?password=***&sslmode=require",
        ),
        ("host=db password=pw dbname=karrot", "host=db password=*** dbname=karrot"),
        ("password=pw host=db", "password=*** host=db"),
        ("http://registry:8081/apis/ccompat/v7", "http://registry:8081/apis/ccompat/v7"),
        ("broker1:9092,broker2:9092", "broker1:9092,broker2:9092"),
    ],
)
def test_redacted(shown: str, expected: str) -> None:
    assert redacted(shown) == expected


def test_the_health_view_never_shows_a_url_password() -> None:
    health = Health()
    health.report("schema_registry", False, "unreachable at http://u:hunter2@registry:8081")
    assert "hunter2" not in health.components["schema_registry"].detail


async def test_registry_errors_are_redacted() -> None:
    # Nothing listens on port 9 of localhost: the error quotes the URL, without the password.
    registry = SchemaRegistry("http://user:hunter2@127.0.0.1:9/apis", timeout_s=1)
    assert registry.shown_url == "http://user:***@127.0.0.1:9/apis"
    with pytest.raises(Exception) as failed:
        await registry.registered_ids({"s": _schema()})
    assert "hunter2" not in str(failed.value)
    assert "user:***@" in str(failed.value)


def _schema() -> SubjectSchema:
    return schemas.load("user-events-value")


def test_a_connection_without_secret_values_in_its_kwargs_for_plaintext() -> None:
    kafka = KafkaConnection("h:1", password=SecretStr("x"))
    assert "sasl_plain_password" not in kafka.client_kwargs()


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # once is enough: a second call does not wrap it again
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info("HTTP Request: GET %s", "http://u:hunter2@registry/x")
    assert "hunter2" not in caplog.text
    assert "http://u:***@registry/x" in caplog.text
