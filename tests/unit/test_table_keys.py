"""Table and facts keys keep the bytes Faust wrote before orjson was installed."""

from __future__ import annotations

import json

from faust.serializers import codecs

from karrot_streams.tables import codec
from karrot_streams.tables.facts import table_key


def test_a_korean_key_is_ascii_escaped_as_the_stdlib_writes_it() -> None:
    assert table_key("디지털기기") == json.dumps("디지털기기").encode()
    assert table_key("디지털기기") == b'"\\ub514\\uc9c0\\ud138\\uae30\\uae30"'


def test_faust_json_codec_writes_the_same_bytes_once_registered() -> None:
    codec.register()
    for key in ("디지털기기", "item-1", "KRW", 'quote"and\\slash'):
        assert bytes(codecs.dumps("json", key)) == table_key(key)
        assert codecs.loads("json", table_key(key)) == key


def test_values_are_orjson_and_readable_by_the_stdlib() -> None:
    codec.register()
    value = {"category": "생활가전", "applied": {"item-events:0": 3}, "pending_sales": [[1, 2.5]]}
    encoded = codecs.dumps(codec.NAME, value)
    assert json.loads(encoded) == value
    assert codecs.loads(codec.NAME, json.dumps(value).encode()) == value
