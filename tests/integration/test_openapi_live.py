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

MAX_EXAMPLES = 6
CONFIG = Path(__file__).with_name("schemathesis.toml")


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


def run_schemathesis(
    url: str, folder: Path, *, examples: int, headers: list[str]
) -> tuple[dict[str, Any], str]:
    """``st run`` from the served document with every check; its JSON report and its output."""
    report_path = folder / "schemathesis.json"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/api/v1/openapi.json",
        *[option for header in headers for option in ("--header", header)],
        "--max-examples",
        str(examples),
        "--seed",
        "20261201",
        "--workers",
        "1",
        "--checks",
        "all",
        # JSON travels as UTF-8 (RFC 8259 section 8.1): a lone surrogate cannot be sent in it.
        "--generation-codec",
        "utf-8",
        "--request-timeout",
        "40",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=folder
    )
    output = result.stdout + result.stderr
    assert report_path.exists(), output[-4000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    cases = report["test_cases"]
    print(
        f"schemathesis ({'token' if headers else 'no token'}): {cases['generated']} cases,"
        f" {cases['with_failures']} with failures, {len(report['errors'])} errors,"
        f" {report['operations']['tested']} operations, {report['running_time']:.0f}s"
    )
    assert result.returncode == 0, output[-6000:]
    assert report["complete"] and report["exit_code"] == 0
    assert report["operations"]["tested"] == report["operations"]["total"] >= 17
    assert report["operations"]["errored"] == 0
    assert cases["with_failures"] == 0 and cases["errored"] == 0, report["failures"]
    assert not report["errors"], report["errors"]
    return report, output


def test_schemathesis_finds_no_failure(worker_url: str, tmp_path: Path) -> None:
    """Every check, with a token: 0 failures, 0 server errors."""
    report, _ = run_schemathesis(
        worker_url,
        tmp_path,
        examples=MAX_EXAMPLES,
        headers=[f"Authorization: Bearer {API_TOKEN}"],
    )
    # Enough cases that every operation was really exercised, not only its examples.
    assert report["test_cases"]["generated"] >= 10 * report["operations"]["tested"]


def test_schemathesis_without_a_token_finds_no_failure(worker_url: str, tmp_path: Path) -> None:
    """Every check, without a token: each protected operation answers its documented 401."""
    run_schemathesis(worker_url, tmp_path, examples=3, headers=[])


@pytest.fixture(autouse=True)
def _quiet_hypothesis_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # schemathesis keeps its example database in the working folder; keep it out of the repo.
    monkeypatch.chdir(tmp_path)
