"""The tables' value codec: JSON through orjson.

Faust's ``json`` codec spent 50-70 µs encoding one item state; orjson about 8. The bytes are
JSON either way, so a changelog or store written with Faust's codec reads back unchanged, and
keys keep Faust's ``json`` codec: key bytes decide partitions, and the facts topics' keys must
stay byte-identical to the tables' (see ``tables.facts.table_key``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from faust.serializers import codecs
from faust.utils.json import JSONEncoder

NAME = "orjson"

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

log = logging.getLogger(__name__)


def saturated(obj: Any) -> Any:
    """``obj`` with every integer outside 64 bits held at the nearest signed bound.

    Amounts are validated to fit 64 bits each, but a sum of them need not (a fuzzer's payments of
    2^63 - 1 KRW to one seller): orjson refuses an integer past 2^64 - 1, and a table value that
    cannot be written would stop the worker on every run at the same record.
    """
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return min(max(obj, INT64_MIN), INT64_MAX)
    if isinstance(obj, dict):
        return {key: saturated(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [saturated(value) for value in obj]
    return obj


class OrjsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj)
        except TypeError as exc:
            if "64-bit" not in str(exc):
                raise
            log.warning("A table value exceeds 64-bit integers; held at the bound: %s", exc)
            return orjson.dumps(saturated(obj))

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


class StdlibJsonCodec(codecs.Codec):
    """Faust's ``json`` codec as it is without orjson installed: ASCII-escaped, compact.

    faust.utils.json switches to orjson whenever it can import it, and orjson writes non-ASCII
    as UTF-8 where the stdlib escapes it: ``"디지털기기"`` would become other bytes, so a
    Korean category key would land in another partition and miss its stored value. Keys (and
    everything else Faust encodes as ``json``) keep the stdlib's bytes.
    """

    def _dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, cls=JSONEncoder, separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        return json.loads(s)


_KEYS = StdlibJsonCodec()


def key_bytes(key: str) -> bytes:
    """A ``str`` table key as Faust's ``json`` key serializer writes it (see StdlibJsonCodec)."""
    return _KEYS._dumps(key)


#: Where a stored value's marks begin (tables/replay_guard.py), compact or with a space.
_APPLIED = b'"applied":'


def applied_marks(value: bytes) -> dict[str, int] | None:
    """The ``applied`` marks of a value as stored, without decoding the rest of it.

    Recovery compares the marks of two values of a key for every changelog record whose key it
    has seen; an item's value holds up to 64 remembered effects after its marks, decoding them
    all would cost more than the write. The bytes ``"applied":`` cannot occur inside a JSON
    string (its quotes would be escaped), no aggregate nests an ``applied`` before its own, and
    the marks are a flat object of ints keyed by ``topic:partition``, so they end at the first
    ``}``. ``None`` for a value without marks, or marks of another shape.
    """
    start = value.find(_APPLIED)
    if start < 0:
        return None
    end = value.find(b"}", start)
    if end < 0:
        return None
    try:
        marks = orjson.loads(value[start + len(_APPLIED) : end + 1])
    except orjson.JSONDecodeError:
        return None
    return marks if type(marks) is dict else None


#: Where a stored value's owed ranges begin (tables/replay_guard.py); absent when none are owed.
_OWED = b'"owed":'


def owed_ranges(value: bytes) -> dict[str, list[list[int]]]:
    """The ``owed`` ranges of a value as stored (empty if it has none), like ``applied_marks``:
    a flat object of lists of ``[lo, hi]`` int pairs, so it ends at the first ``}``."""
    start = value.find(_OWED)
    if start < 0:
        return {}
    end = value.find(b"}", start)
    if end < 0:
        return {}
    try:
        owed = orjson.loads(value[start + len(_OWED) : end + 1])
    except orjson.JSONDecodeError:
        return {}
    return owed if type(owed) is dict else {}


def register() -> None:
    """Make ``value_serializer="orjson"`` known to Faust, and pin ``json`` (idempotent)."""
    codecs.register(NAME, OrjsonCodec())
    codecs.register("json", StdlibJsonCodec())


def use_for_values(table: Any) -> Any:
    """Encode ``table``'s values with orjson, in its store and its changelog.

    Faust's ``Table`` takes no ``value_serializer`` argument (it derives one from
    ``value_type``); its store and changelog sends read the attribute when they first need it.
    """
    table.value_serializer = NAME
    return table
