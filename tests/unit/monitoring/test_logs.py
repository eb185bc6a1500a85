"""KARROT_LOG_FORMAT: what Faust's worker is told, the JSON records, and ``log_fields``."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from karrot_streams.monitoring import logs
from karrot_streams.pipeline.messages import Incoming
from karrot_streams.settings import Settings


def test_text_leaves_faust_its_own_format() -> None:
    assert logs.worker_logging_config(Settings(log_format="text")) is None


def test_json_replaces_the_handler_and_keeps_the_level() -> None:
    config = logs.worker_logging_config(Settings(log_format="json"))
    assert config is not None
    assert config["merge"] is True
    assert "root" not in config  # the level given to `faust worker -l` stays
    assert config["handlers"]["default"]["formatter"] == "karrot_json"


def test_a_json_record_has_the_pipeline_fields_at_top_level() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    logger = logging.getLogger("tests.logs.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        incoming = Incoming("item-events", 2, 41, b"k", b"v")
        logger.warning(
            "Dead-lettered %s: 가격", "x", extra=logs.log_fields(incoming, event_id="e-1")
        )
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["message"] == "Dead-lettered x: 가격"
    assert record["level"] == "WARNING"
    assert record["logger"] == "tests.logs.json"
    assert (record["topic"], record["partition"], record["offset"]) == ("item-events", 2, 41)
    assert record["event_id"] == "e-1"
    assert {"time", "pid"} <= set(record)


def test_log_fields_leaves_out_what_is_unknown() -> None:
    assert logs.log_fields() == {}
    assert logs.log_fields(event_id="e") == {"event_id": "e"}
    assert set(logs.log_fields(Incoming("t", 0, 1, None, None))) == {"topic", "partition", "offset"}


def test_the_merged_config_routes_every_logger_through_json() -> None:
    """What mode does with the config (merge into its own, dictConfig) gives JSON on the root."""
    config = logs.worker_logging_config(Settings(log_format="json"))
    assert config is not None
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(
            {k: v for k, v in config.items() if k != "merge"}
            | {"root": {"level": "INFO", "handlers": ["default"]}}
        )
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logging.getLogger("aiokafka.consumer").info("joined")
        assert json.loads(stream.getvalue())["logger"] == "aiokafka.consumer"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
