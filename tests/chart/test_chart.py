"""The Helm chart (deploy/helm/karrot-streams) as a platform team's tools see it: `helm lint`,
its manifests valid against Kubernetes' schemas (`kubeconform -strict`), `kube-score` clean with
its optional checks too, and the contract the README promises (static membership, one volume
per pod, secrets from Secrets only, the alert rules and dashboard from their one source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.chart import (
    CHART,
    CRD_KINDS,
    KUBE_VERSION,
    PRODUCTION,
    documents,
    rules_file,
    run,
    standalone_schemas,
    template,
    tool,
)

pytestmark = pytest.mark.chart

VALUES = {"default": (), "production": (PRODUCTION,)}


@pytest.fixture(scope="module", params=sorted(VALUES))
def rendered(request: pytest.FixtureRequest) -> str:
    return template(*VALUES[request.param])


def of_kind(rendered: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents(rendered) if doc["kind"] == kind]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint(values: str) -> None:
    args = [tool("helm"), "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    for path in VALUES[values]:
        args += ["--values", str(path)]
    result = run(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubeconform_strict(rendered: str, tmp_path: Path) -> None:
    kinds = [
        (d["apiVersion"], d["kind"]) for d in documents(rendered) if d["kind"] not in CRD_KINDS
    ]
    location = standalone_schemas(kinds, tmp_path)
    result = run(
        tool("kubeconform"),
        "-strict",
        "-summary",
        "-kubernetes-version",
        KUBE_VERSION,
        "-schema-location",
        location,
        "-skip",
        ",".join(CRD_KINDS),
        stdin=rendered,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout, result.stdout


def test_kubeconform_catches_a_wrong_field(tmp_path: Path) -> None:
    broken = template().replace("podManagementPolicy: Parallel", "podManagmentPolicy: Parallel")
    location = standalone_schemas([("apps/v1", "StatefulSet")], tmp_path)
    result = run(
        tool("kubeconform"), "-strict", "-kubernetes-version", KUBE_VERSION,
        "-schema-location", location, "-ignore-missing-schemas", stdin=broken,
    )  # fmt: skip
    assert result.returncode != 0
    assert "podManagmentPolicy" in result.stdout


def test_kube_score_clean_with_the_optional_checks(rendered: str) -> None:
    result = run(
        tool("kube-score"),
        "score",
        "--all-default-optional",
        "--exit-one-on-warning",
        "--output-format",
        "ci",
        "-",
        stdin=rendered,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # What is left out, it is left out by an annotation with its reason beside it (the template).
    ignored = {
        doc["metadata"]["annotations"]["kube-score/ignore"]
        for doc in documents(rendered)
        if "kube-score/ignore" in doc["metadata"].get("annotations", {})
    }
    assert ignored == {"container-image-pull-policy"}


def test_workers_are_statefulsets_with_a_volume_and_a_stable_identity(rendered: str) -> None:
    statefulsets = of_kind(rendered, "StatefulSet")
    assert statefulsets
    for sts in statefulsets:
        spec = sts["spec"]
        assert spec["podManagementPolicy"] == "Parallel"
        [claim] = spec["volumeClaimTemplates"]
        pod = spec["template"]["spec"]
        [worker] = pod["containers"]
        env = env_of(worker)
        mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == env["KARROT_DATA_DIR"]["value"]
        assert env["KARROT_GROUP_INSTANCE_ID"]["value"] == "$(POD_NAME)"
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        peers = spec["serviceName"]
        assert env["KARROT_ADVERTISED_URL"]["value"] == (
            f"http://$(POD_NAME).{peers}.$(POD_NAMESPACE).svc.cluster.local:6066"
        )
        [headless] = [s for s in of_kind(rendered, "Service") if s["metadata"]["name"] == peers]
        assert headless["spec"]["clusterIP"] == "None"
        assert pod["terminationGracePeriodSeconds"] >= 60
        assert worker["readinessProbe"]["httpGet"]["path"] == "/api/v1/monitoring/ready"
        startup = worker["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800


def test_the_pods_keep_the_images_contract(rendered: str) -> None:
    for doc in of_kind(rendered, "StatefulSet") + of_kind(rendered, "Job"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]


def test_secrets_come_from_secret_references_only(rendered: str) -> None:
    secret_like = ("PASSWORD", "TOKENS", "SECRET", "DATABASE_URL")
    for doc in of_kind(rendered, "StatefulSet") + of_kind(rendered, "Job"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for name, item in env_of(container).items():
                if any(word in name for word in secret_like):
                    assert "value" not in item, name
                    assert "secretKeyRef" in item["valueFrom"], name
    assert not of_kind(rendered, "Secret")


def test_production_values_use_every_secured_setting() -> None:
    rendered = template(PRODUCTION)
    [pipeline, aggregates] = sorted(
        of_kind(rendered, "StatefulSet"), key=lambda s: s["metadata"]["name"], reverse=True
    )
    env = env_of(pipeline["spec"]["template"]["spec"]["containers"][0])
    assert env["KARROT_ROLE"]["value"] == "pipeline"
    assert env["KARROT_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["KARROT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
    assert env["KARROT_KAFKA_SSL_CAFILE"]["value"].startswith("/etc/karrot-streams/kafka-tls/")
    assert "replicas" not in pipeline["spec"]  # KEDA owns it
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(rendered, "ScaledObject")}
    assert set(scaled) == {pipeline["metadata"]["name"], aggregates["metadata"]["name"]}
    triggers = [s["spec"]["triggers"][0]["metadata"] for s in scaled.values()]
    assert {t["sasl"] for t in triggers} == {"scram_sha512"}  # KEDA's name for SCRAM-SHA-512
    groups = {t["consumerGroup"] for t in triggers}
    assert groups == {"karrot-streams", "karrot-streams-aggregates"}
    [api] = [s for s in of_kind(rendered, "Service") if "clusterIP" not in s["spec"]]
    assert api["spec"]["selector"]["app.kubernetes.io/component"] == "aggregates"


def test_keda_never_scales_past_the_partitions() -> None:
    args = [tool("helm"), "template", "karrot", str(CHART), "--kube-version", KUBE_VERSION]
    result = run(
        *args,
        "--values",
        str(PRODUCTION),
        "--set",
        "keda.maxReplicaCount=13",
    )
    assert result.returncode != 0
    assert "more than kafka.topicPartitions 12" in result.stderr


def test_rules_and_dashboard_come_from_the_one_source() -> None:
    rendered = template(PRODUCTION)
    [rule] = of_kind(rendered, "PrometheusRule")
    assert rule["spec"] == rules_file()
    [dashboard] = of_kind(rendered, "ConfigMap")
    source = (CHART / "files" / "grafana" / "karrot-streams.json").read_text()
    assert json.loads(dashboard["data"]["karrot-streams.json"]) == json.loads(source)
    [monitor] = of_kind(rendered, "PodMonitor")
    label = monitor["spec"]["jobLabel"]
    [sts, *_] = of_kind(rendered, "StatefulSet")
    assert sts["spec"]["template"]["metadata"]["labels"][label] == "karrot-streams"
    # The rules select that job.
    assert (
        'job="karrot-streams"' in (CHART / "files" / "prometheus" / "karrot-alerts.yml").read_text()
    )
