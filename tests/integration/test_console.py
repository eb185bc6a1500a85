"""The operator console in headless Chromium, against a real worker on the real stack.

One worker serves both tests. It starts with chat messages capped at 40 characters, so a longer
(otherwise valid) message is dead-lettered as too long; the redrive test then restarts it with the
contract's limit, redrives that letter from the page and sees the event end PROCESSED, which is
how an operator recovers from a rule that was too strict.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from karrot_streams.avro.codec import encode
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.model import Event
from karrot_streams.events.types import INPUT_TOPICS, PAYLOAD_RECORD_OF, EventType
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record, TrafficSpec, produce, records
from tests.support.browser import chromium
from tests.support.worker import ADMIN_TOKEN, API_TOKEN, WorkerProcess, free_port, new_app_id

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
STRICT_MESSAGE_LENGTH = 50  # the demo traffic's chat lines are at most 40 characters
EVENTUALLY_S = 120.0
LETTER_ATTRIBUTES = ("topic", "partition", "offset")
LONG_MESSAGE = (
    "안녕하세요! 이 메시지는 콘솔 테스트를 위해 일부러 길게 쓴 채팅 메시지입니다. "
    "재처리하면 처리되어야 합니다."
)

T = TypeVar("T")


@dataclass
class ConsoleWorker:
    """The worker behind the page; ``restart`` keeps its app id, data and port (page origin)."""

    process: WorkerProcess

    @property
    def url(self) -> str:
        return self.process.url

    async def restart(self, **env: str) -> None:
        old = self.process
        old.stop()
        self.process = WorkerProcess(
            app_id=old.app_id,
            data_dir=old.data_dir,
            log_path=old.log_path,
            extra_env=env,
            port=old.port,
        )
        self.process.start()
        await self.process.wait_ready()


async def start_at_the_end(bootstrap: str, group_id: str, topics: Sequence[str]) -> None:
    """Commit the input topics' end offsets for ``group_id`` before its first worker joins.

    A new app id would otherwise read everything earlier tests left in the shared topics; the
    console only needs what this test produces.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: end for tp, end in ends.items()})
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def console_worker(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, input_writers: object
) -> AsyncIterator[ConsoleWorker]:
    root = tmp_path_factory.mktemp("console-worker")
    app_id = new_app_id("karrot-console")
    await start_at_the_end(settings.kafka_bootstrap, app_id, INPUT_TOPICS)
    worker = ConsoleWorker(
        WorkerProcess(
            app_id=app_id,
            data_dir=root / "data",
            log_path=root / "worker.log",
            extra_env={"KARROT_MAX_MESSAGE_LENGTH": str(STRICT_MESSAGE_LENGTH)},
            port=free_port(),
        )
    )
    worker.process.start()
    try:
        await worker.process.wait_ready()
        yield worker
    finally:
        worker.process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        driver.set_window_size(1440, 1000)
        yield driver


def wait_for(
    driver: WebDriver,
    probe: Callable[[WebDriver], T | Literal[False]],
    what: str,
    timeout_s: float = EVENTUALLY_S,
) -> T:
    """``probe``'s first truthy answer; a page re-rendered under the probe is probed again.

    A probe says "not yet" with False (any falsy answer works, but False is what lets the type
    of the answer exclude it).
    """

    def attempt(d: WebDriver) -> T | Literal[False]:
        try:
            return probe(d)
        except StaleElementReferenceException:
            return False

    try:
        result: T = WebDriverWait(driver, timeout_s, poll_frequency=0.5).until(attempt)
    except TimeoutException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "console-failed.png"))
        page = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{what} not seen in {timeout_s:g}s; the page:\n{page}") from None
    return result


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def sign_in(driver: WebDriver, token: str) -> None:
    field = by_id(driver, "token-input")
    field.clear()
    field.send_keys(token)
    by_id(driver, "login-button").click()


def api_requests(driver: WebDriver) -> list[str]:
    """Every /api/ URL the page has fetched so far."""
    urls: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    return [url for url in urls if "/api/" in url]


def script_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The console's JavaScript errors (failed requests are logged too, and expected here)."""
    logs = driver.get_log("browser")  # type: ignore[no-untyped-call]  # unannotated in selenium
    return [entry for entry in logs if entry.get("source") != "network"]


def long_chat_message(tag: str, writers: dict[str, WriterSchema]) -> Record:
    room = f"{tag}room-long"
    event = Event(
        event_id=str(uuid.uuid4()),
        event_type=EventType.CHAT_MESSAGE_SENT,
        aggregate_id=room,
        occurred_at=datetime.now(UTC).replace(microsecond=0),
        payload_record=PAYLOAD_RECORD_OF[EventType.CHAT_MESSAGE_SENT],
        payload={"chatRoomId": room, "senderId": f"{tag}user-1", "message": LONG_MESSAGE},
        source="console-test",
    )
    writer = writers["chat-events"]
    raw = encode(writer.schema_id, writer.parsed, event.to_avro())
    return Record("chat-events", room.encode(), event=event, raw=raw)


def full_page_screenshot(driver: WebDriver, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1440, max(900, height + 160))  # the window's frame takes some
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 1000)


async def test_without_a_token_only_the_login_field_shows(
    console_worker: ConsoleWorker, browser: WebDriver
) -> None:
    browser.get(console_worker.url + "/console")
    wait_for(browser, lambda d: by_id(d, "token-input").is_displayed(), "the login field")
    assert not by_id(browser, "app").is_displayed()
    assert not by_id(browser, "session").is_displayed()
    assert not re.search(r"\d", by_id(browser, "app").text), "figures on a page without a token"
    assert api_requests(browser) == [], "the page called the API before it had a token"
    assert browser.execute_script("return sessionStorage.length") == 0

    sign_in(browser, "not-a-token")
    wait_for(browser, lambda d: by_id(d, "login-error").text, "the refusal of a wrong token")
    assert "not accepted" in by_id(browser, "login-error").text
    assert not by_id(browser, "app").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    # The one call made checked the token; it must not have been one that returns data.
    assert all("/api/v1/categories" in url for url in api_requests(browser))
    assert script_errors(browser) == []


async def test_console_shows_the_stream_and_redrives_a_dead_letter(
    console_worker: ConsoleWorker,
    browser: WebDriver,
    settings: Settings,
    input_writers: dict[str, WriterSchema],
) -> None:
    tag = f"c{uuid.uuid4().hex[:6]}-"
    browser.get(console_worker.url + "/console")
    sign_in(browser, API_TOKEN)
    wait_for(browser, lambda d: by_id(d, "app").is_displayed(), "the console after signing in")
    assert browser.execute_script("return sessionStorage.getItem('karrot.console.token')") == (
        API_TOKEN
    )

    # Events flow for ten seconds: the counters, the chart and the event store's counts move.
    # Untagged: this worker's tables are its own, and the categories read as they would.
    traffic = list(records(TrafficSpec(count=1500, seed=int(tag[1:-1], 16)), input_writers))
    await produce(settings.kafka_bootstrap, traffic, rate=150)
    wait_for(
        browser,
        lambda d: by_id(d, "health-badge").get_attribute("data-status") == "UP",
        "worker health UP",
    )

    def processed_totals(d: WebDriver) -> bool:
        totals = [
            int(re.sub(r"\D", "", item.text.split("·")[-1]) or 0)
            for item in d.find_elements(By.CSS_SELECTOR, "#throughput-legend li")
        ]
        return len(totals) == 4 and sum(totals) > 0

    wait_for(browser, processed_totals, "processed counts")

    def processed_in_store(d: WebDriver) -> bool:
        cell = d.find_element(By.CSS_SELECTOR, "#store-counts [data-status=PROCESSED] .value")
        return int(re.sub(r"\D", "", cell.text) or 0) > 0

    wait_for(browser, processed_in_store, "event-store counts")
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#throughput-chart path.series"),
        "a rate line in the chart",
    )

    def lag_of_input_topics(d: WebDriver) -> bool:
        committed: dict[str, int] = {}
        for row in d.find_elements(By.CSS_SELECTOR, "#lag-table tbody tr"):
            topic, _, _, done, lag = (cell.text for cell in row.find_elements(By.TAG_NAME, "td"))
            if topic in INPUT_TOPICS and done.replace(",", "").isdigit() and lag != "—":
                committed[topic] = committed.get(topic, 0) + 1
        return set(committed) == set(INPUT_TOPICS)

    wait_for(browser, lag_of_input_topics, "lag per partition of the input topics")
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#top-items li[data-category]"),
        "top categories",
    )

    # A poison message: a chat message longer than this worker allows.
    poison = long_chat_message(tag, input_writers)
    assert poison.event is not None
    await produce(settings.kafka_bootstrap, [poison])

    def poison_row(d: WebDriver) -> WebElement | None:
        for row in d.find_elements(By.CSS_SELECTOR, "#dlq-recent tbody tr[data-topic]"):
            if row.get_attribute("data-key") == poison.key.decode():
                return row
        return None

    def poison_letter(d: WebDriver) -> dict[str, str] | Literal[False]:
        row = poison_row(d)
        if row is None:
            return False
        return {name: row.get_attribute(f"data-{name}") or "" for name in LETTER_ATTRIBUTES} | {
            "text": row.text
        }

    letter = wait_for(browser, poison_letter, "the dead letter in the latest failures")
    assert letter["topic"] == "dlq.chat-events"
    assert "InvalidEvent" in letter["text"]
    assert f"{len(LONG_MESSAGE)} characters, at most {STRICT_MESSAGE_LENGTH}" in letter["text"]
    partition, offset = letter["partition"], letter["offset"]
    full_page_screenshot(browser, ARTIFACTS / "console.png")

    # The rule is relaxed (a restart with the contract's limit); the page rides out the restart.
    await console_worker.restart()
    wait_for(
        browser,
        lambda d: by_id(d, "updated-at").text.startswith("Updated"),
        "a refresh after the restart",
    )

    # Inspect: headers, and the decoded value with its Korean text.
    def inspect_poison(d: WebDriver) -> bool:
        row = poison_row(d)
        if row is None:
            return False
        row.find_element(By.TAG_NAME, "button").click()  # stale if re-rendered: tried again
        return True

    wait_for(browser, inspect_poison, "the dead letter after the restart")
    wait_for(browser, lambda d: by_id(d, "inspect-dialog").is_displayed(), "the inspect dialog")
    headers = by_id(browser, "inspect-headers").text
    assert "exception_class" in headers
    assert "karrot_streams.events.failures.InvalidEvent" in headers
    assert "original_topic" in headers
    decoded = wait_for(
        browser, lambda d: d.find_elements(By.ID, "inspect-decoded"), "the decoded value"
    )[0]
    assert LONG_MESSAGE in decoded.text
    assert poison.event.event_id in decoded.text
    browser.save_screenshot(str(ARTIFACTS / "console-inspect.png"))

    # Redrive that letter: the dry run first, then the confirmation. The API token may not.
    by_id(browser, "inspect-redrive").click()
    wait_for(browser, lambda d: by_id(d, "redrive-dialog").is_displayed(), "the redrive dialog")
    assert by_id(browser, "redrive-topic").get_attribute("value") == "dlq.chat-events"
    assert by_id(browser, "redrive-partition").get_attribute("value") == partition
    assert by_id(browser, "redrive-offset").get_attribute("value") == offset
    by_id(browser, "redrive-preview").click()
    wait_for(browser, lambda d: "admin token" in by_id(d, "redrive-error").text, "the 403")
    assert not by_id(browser, "redrive-confirm").is_enabled()

    by_id(browser, "redrive-admin-token").send_keys(ADMIN_TOKEN)
    by_id(browser, "redrive-preview").click()
    wait_for(browser, lambda d: "Dry run" in by_id(d, "redrive-summary").text, "the dry run")
    assert "1 selected" in by_id(browser, "redrive-summary").text
    listed = browser.find_elements(By.CSS_SELECTOR, "#redrive-list tbody tr")
    assert [
        (r.get_attribute("data-partition"), r.get_attribute("data-offset")) for r in listed
    ] == [(partition, offset)]
    assert listed[0].get_attribute("data-status") == "WOULD_REDRIVE"
    confirm = by_id(browser, "redrive-confirm")
    assert confirm.is_enabled()
    assert confirm.text == "Redrive 1 message(s)"
    browser.save_screenshot(str(ARTIFACTS / "console-redrive.png"))
    confirm.click()
    wait_for(browser, lambda d: "Redriven: 1 of 1" in by_id(d, "redrive-summary").text, "redrive")
    done = browser.find_element(By.CSS_SELECTOR, "#redrive-list tbody tr")
    assert done.get_attribute("data-status") == "REDRIVEN"
    assert "chat-events" in done.text
    # The categories are read again with the redrive's consistency token (a chat event counts in
    # no table: answered at once, 200).
    wait_for(
        browser,
        lambda d: by_id(d, "redrive-summary").get_attribute("data-consistent") == "true",
        "the categories read with the redrive's consistency tokens",
    )
    browser.find_element(By.CSS_SELECTOR, "#redrive-dialog [data-close]").click()

    # The worker reprocesses it: the event store moves it from FAILED to PROCESSED.
    lookup = by_id(browser, "lookup-id")
    lookup.send_keys(poison.event.event_id)

    def looked_up_status(d: WebDriver) -> bool:
        found = d.find_elements(By.ID, "lookup-status")
        if found and found[0].text == "PROCESSED":
            return True
        by_id(d, "lookup-form").find_element(By.TAG_NAME, "button").click()  # ask again
        return False

    wait_for(browser, looked_up_status, "the redriven event PROCESSED")
    assert "CHAT_MESSAGE_SENT" in by_id(browser, "lookup-found").text
    full_page_screenshot(browser, ARTIFACTS / "console-after-redrive.png")
    assert script_errors(browser) == []
