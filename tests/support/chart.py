"""The Helm chart's checks: helm, kubeconform and kube-score from .tools/bin (deploy/tools.sh),
Kubernetes' JSON schemas from the kubernetes-validate package (offline)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "karrot-streams"
PRODUCTION = CHART / "ci" / "production-values.yaml"
#: The oldest Kubernetes the chart's kubeVersion allows that has every field it uses GA or beta
#: on by default (persistentVolumeClaimRetentionPolicy: beta in 1.27, GA in 1.32).
KUBE_VERSION = "1.31.0"
#: Custom resources, whose schemas Kubernetes does not ship: skipped by kubeconform. The rules'
#: content is promtool's to check (tests/unit/test_deploy.py), and test_chart.py checks that the
#: PrometheusRule carries the file unchanged.
CRD_KINDS = ("PodMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication")


def tool(name: str) -> str:
    local = ROOT / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: `make chart-tools` builds it into .tools/bin")
    return found


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def template(*values: Path, **sets: str) -> str:
    args = [tool("helm"), "template", "karrot", str(CHART), "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _schema_file(api_version: str, kind: str) -> str:
    """kubeconform's name for a kind's schema: ``statefulset-apps-v1.json``, ``service-v1.json``."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def standalone_schemas(kinds: Iterable[tuple[str, str]], into: Path) -> str:
    """kubernetes-validate's strict schemas of ``kinds``, made standalone for kubeconform.

    The package's schemas point at a shared ``/api/_definitions.json``, which its own resolver
    maps and kubeconform cannot load (it then reports the schema missing); each file written here
    carries the definitions it reaches. Returns kubeconform's ``-schema-location`` template.
    """
    source = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"v{KUBE_VERSION}-local-strict"
    )
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    target = into / f"v{KUBE_VERSION}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    refs = re.compile(r'"(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')

    def local(text: str) -> str:
        return refs.sub(lambda m: f'"#/definitions/{m.group(1)}"', text)

    for api_version, kind in set(kinds):
        name = _schema_file(api_version, kind)
        text = (source / name).read_text()
        reached: dict[str, Any] = {}
        pending = refs.findall(text)
        while pending:
            ref = pending.pop()
            if ref not in reached:
                reached[ref] = definitions[ref]
                pending.extend(refs.findall(json.dumps(definitions[ref])))
        schema = json.loads(local(text))
        schema["definitions"] = json.loads(local(json.dumps(reached)))
        (target / name).write_text(json.dumps(schema))
    return str(
        into
        / "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
        / "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )


@cache
def rules_file() -> Any:
    return yaml.safe_load((CHART / "files" / "prometheus" / "karrot-alerts.yml").read_text())
