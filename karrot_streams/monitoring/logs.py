"""Log format of the process: Faust's own text (``KARROT_LOG_FORMAT=text``) or one JSON object a
line (``json``), for a log pipeline (Loki, Elasticsearch, Cloud Logging) to filter by field.

Faust's worker configures logging itself when it starts (``mode.utils.logging.setup_logging``,
from ``app.conf.logging_config``), after the app is built; so :func:`setup` hands it a config to
merge rather than configuring handlers now, and every record (Faust's, aiokafka's, the project's)
goes through the one root handler it sets. Logging is per process, like the worker, hence the
module-level state.

Pipeline code passes :func:`log_fields` as ``extra=`` so a record carries ``topic``,
``partition``, ``offset`` and ``event_id`` as fields of its own::

    log.warning("Dead-lettered: %s", reason, extra=log_fields(incoming, event_id=event_id))
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any, Protocol

import faust
from mode.types.signals import BaseSignalT
from pythonjsonlogger.json import JsonFormatter

from karrot_streams.settings import Settings

#: The fields a record gets from ``log_fields``; a JSON line has them at its top level.
FIELDS = ("topic", "partition", "offset", "event_id")
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class Positioned(Protocol):
    """What ``log_fields`` reads: a consumed record's place (pipeline.messages.Incoming)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


def log_fields(
    incoming: Positioned | None = None, *, event_id: str | None = None
) -> dict[str, Any]:
    """``extra=`` for a record about one consumed message (fields left out when unknown)."""
    fields: dict[str, Any] = {}
    if incoming is not None:
        fields.update(topic=incoming.topic, partition=incoming.partition, offset=incoming.offset)
    if event_id is not None:
        fields["event_id"] = event_id
    return fields


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time, level, logger, pid, message, and every ``extra`` field."""
    return JsonFormatter(JSON_FORMAT, rename_fields=JSON_RENAMES, json_ensure_ascii=False)


def worker_logging_config(settings: Settings) -> dict[str, Any] | None:
    """The ``logging_config`` Faust's worker merges with its own; None keeps Faust's text."""
    if settings.log_format == "text":
        return None
    return {
        # Merged into mode's config: its root level (``-l info``) stays, its handler is replaced.
        "merge": True,
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"karrot_json": {"()": f"{__name__}.json_formatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "karrot_json",
                "stream": "ext://sys.stderr",
            }
        },
    }


_worker_config: dict[str, Any] | None = None
_connected = False


def setup(settings: Settings) -> None:
    """Choose the worker's log format; Faust applies it when its worker starts.

    Called at the top of ``create_app``, before the app exists: the config reaches the app
    through Faust's class-level ``on_configured`` signal, sent when the app reads its settings.
    """
    global _worker_config, _connected  # noqa: PLW0603  logging is per process (see the docstring)
    _worker_config = worker_logging_config(settings)
    if not _connected:
        faust.App.on_configured.connect(_on_configured)
        _connected = True


def _on_configured(app: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
    """Receiver of ``App.on_configured``: ``send(conf)`` arrives as ``(app, conf, signal=...)``."""
    # Set without reading it first: Faust warns when a setting is changed after it was read.
    if _worker_config is not None and args:
        args[0].logging_config = dict(_worker_config)


def configure_process(settings: Settings, level: int = logging.INFO) -> None:
    """Root logging for a process that is not a Faust worker (the command line)."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
