"""The OpenAPI document against a live worker: schemathesis runs from it, and tokens are enforced.

schemathesis (a property-based API client) generates requests from ``/api/v1/openapi.json``
(examples, boundary values, random data, a publish-then-read sequence through the document's
link) and checks every answer: no 5xx, a documented status, content type, headers and body
schema, and that a protected operation refuses a request without its token. Bounded to a few
examples per operation, one client worker, well under two minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from karrot_streams.web.http.auth import needs_token
from tests.support.worker import API_TOKEN

MAX_EXAMPLES = 10
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "ignored_auth",
)


def test_the_document_is_served_open(worker_url: str) -> None:
    answer = httpx.get(worker_url + "/api/v1/openapi.json", timeout=10.0)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["openapi"] == "3.1.0"


def test_every_protected_operation_is_401_without_a_token(worker_url: str) -> None:
    document = httpx.get(worker_url + "/api/v1/openapi.json", timeout=10.0).json()
    samples = {
        "eventId": "00000000-0000-0000-0000-000000000000",
        "category": "games",
        "sellerId": "seller-1",
        "region": "seoul",
        "topic": "dlq.chat-events",
    }
    protected = 0
    with httpx.Client(base_url=worker_url, timeout=10.0) as client:
        for template, item in document["paths"].items():
            if not needs_token(template):
                continue
            path = template.format(**samples)
            for method in item:
                for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                    answer = client.request(method.upper(), path, json={}, headers=headers)
                    assert answer.status_code == 401, (method, path, answer.text)
                    assert answer.json()["code"] == "UNAUTHORIZED"
                    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
                protected += 1
    assert protected >= 11


def test_schemathesis_finds_no_failure(worker_url: str, tmp_path: Path) -> None:
    report_path = tmp_path / "schemathesis.json"
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{worker_url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {API_TOKEN}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261201",
        "--workers",
        "1",
        "--checks",
        ",".join(CHECKS),
        "--request-timeout",
        "20",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert report_path.exists(), output[-4000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    cases = report["test_cases"]
    print(
        f"schemathesis: {cases['generated']} cases, {cases['with_failures']} with failures,"
        f" {len(report['errors'])} errors, {report['operations']['tested']} operations,"
        f" {report['running_time']:.0f}s"
    )
    assert result.returncode == 0, output[-6000:]
    assert report["complete"] and report["exit_code"] == 0
    assert report["operations"]["tested"] == report["operations"]["total"] >= 17
    assert report["operations"]["errored"] == 0
    assert cases["with_failures"] == 0 and cases["errored"] == 0, report["failures"]
    assert not report["errors"], report["errors"]
    # Enough cases that every operation was really exercised, not only its examples.
    assert cases["generated"] >= 20 * report["operations"]["tested"]


@pytest.fixture(autouse=True)
def _quiet_hypothesis_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # schemathesis keeps its example database in the working folder; keep it out of the repo.
    monkeypatch.chdir(tmp_path)
