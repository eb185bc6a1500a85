"""docker-compose.yml runs what stack/stack.sh runs: same versions, ports and settings.

Read from the two files themselves (the script's variables and the ``server.properties`` and
``-D`` flags it writes), so a change to one that the other does not follow fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = (ROOT / "stack" / "stack.sh").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
#: Kafka's node listens on every interface in a container, on localhost on the machine.
HOST_DEPENDENT = {"listeners"}


def stack_var(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", STACK, re.MULTILINE)
    assert match, f"{name} not set in stack.sh"
    return match.group(1)


def stack_default(name: str) -> str:
    """The default of a ``X=${KARROT_Y:-default}`` line of stack.sh."""
    match = re.search(rf"^{name}=\$\{{\w+:-([^}}]+)\}}", STACK, re.MULTILINE)
    assert match, f"{name} has no default in stack.sh"
    return match.group(1)


def compose_value(value: object) -> str:
    """A compose value with its ``${VAR:-default}`` substitutions at their defaults."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def image_tag(service: str) -> str:
    return str(SERVICES[service]["image"]).rsplit(":", 1)[1]


def server_properties() -> dict[str, str]:
    """What stack.sh writes to server.properties for the single node (node 1)."""
    body = STACK.split('cat >"$dir/server.properties" <<EOF\n', 1)[1].split("\nEOF", 1)[0]
    values = {
        "$n": "1",
        "$voters": f"1@localhost:{stack_default('KAFKA_CTRL_PORT')}",
        '$(kafka_port "$n")': stack_default("KAFKA_PORT"),
        '$(kafka_ctrl_port "$n")': stack_default("KAFKA_CTRL_PORT"),
        "$rf": "1",
        "$isr": "1",
        # The optional SASL_SSL listener (KARROT_STACK_SECURE) is the local stack's alone: its
        # certificates are made by stack.sh, so the compose file has the plaintext listener only.
        "${secure_listener:+,SASL_SSL:SASL_SSL}": "",
        "$secure_listener": "",
    }
    props = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        for name, text in sorted(values.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(name, text)
        props[key] = value
    return props


def test_versions_are_the_same() -> None:
    assert image_tag("kafka") == stack_var("KAFKA_VERSION")
    pom = (ROOT / "stack" / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{stack_var('KAFKA_VERSION')}</kafka.version>" in pom
    assert image_tag("registry") == stack_var("APICURIO_VERSION")
    assert image_tag("postgres") == stack_var("PG_VERSION")


def test_ports_are_the_same() -> None:
    kafka = stack_default("KAFKA_PORT")
    assert [compose_value(p) for p in SERVICES["kafka"]["ports"]] == [f"{kafka}:{kafka}"]
    registry = compose_value(SERVICES["registry"]["ports"][0]).split(":")[0]
    assert registry == stack_default("REGISTRY_PORT")
    postgres = compose_value(SERVICES["postgres"]["ports"][0]).split(":")[0]
    assert postgres == stack_default("PG_PORT")


def test_kafka_has_the_stacks_server_properties() -> None:
    env = {k: compose_value(v) for k, v in SERVICES["kafka"]["environment"].items()}
    props = server_properties()
    assert len(props) >= 15
    for key, value in props.items():
        if key == "log.dirs":
            continue  # a folder of each
        name = "KAFKA_" + key.upper().replace(".", "_")
        assert name in env, f"{key}={value} of stack.sh is missing from docker-compose.yml"
        want = value.replace("localhost:", ":") if key in HOST_DEPENDENT else value
        assert env[name] == want, key
    extra = {k for k in env if k.startswith("KAFKA_")} - {
        "KAFKA_" + k.upper().replace(".", "_") for k in props
    }
    assert extra == {"KAFKA_HEAP_OPTS"}, extra
    heap = re.search(r"echo (\w+) \|\| echo", STACK)
    assert heap and f"-Xmx{heap.group(1)} -Xms256m" == env["KAFKA_HEAP_OPTS"]


def test_the_registry_has_the_stacks_flags() -> None:
    env = {k: compose_value(v) for k, v in SERVICES["registry"]["environment"].items()}
    flags = dict(re.findall(r"-Dapicurio\.([\w.-]+)=(\S+)", STACK))
    assert len(flags) >= 6
    for key, value in flags.items():
        name = "APICURIO_" + re.sub(r"[.-]", "_", key).upper()
        compatibility = value == '"$REGISTRY_COMPATIBILITY"'
        want = stack_default("REGISTRY_COMPATIBILITY") if compatibility else value
        assert env.get(name) == want, key
    assert {k for k in env if k.startswith("APICURIO_")} == {
        "APICURIO_" + re.sub(r"[.-]", "_", key).upper() for key in flags
    }
    java = re.search(r'"\$REGISTRY_JAVA" (-Xmx\S+ -Xms\S+)', STACK)
    assert java and env["JAVA_OPTS_APPEND"] == java.group(1)


def test_postgres_has_the_stacks_role_database_and_encoding() -> None:
    env = SERVICES["postgres"]["environment"]
    assert env["POSTGRES_USER"] == stack_var("PG_ROLE")
    assert env["POSTGRES_PASSWORD"] == stack_var("PG_PASSWORD")
    assert env["POSTGRES_DB"] == stack_var("PG_DB")
    initdb = re.search(r'initdb" -D "\$PG_DATA" -U postgres (-E \S+ --locale=\S+)', STACK)
    assert initdb and env["POSTGRES_INITDB_ARGS"] == initdb.group(1)


@pytest.mark.parametrize("service", ["kafka", "registry", "postgres"])
def test_each_service_has_a_healthcheck(service: str) -> None:
    assert SERVICES[service]["healthcheck"]["test"]
