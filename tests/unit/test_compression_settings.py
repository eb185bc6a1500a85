"""Every Kafka codec is readable, and the producer's codec is a setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import codec
from pydantic import ValidationError

from karrot_streams.app import create_app
from karrot_streams.settings import Settings


def test_every_codec_library_is_installed() -> None:
    # Without aiokafka's extras these are False and a compressed fetch crashes the worker.
    assert codec.has_gzip()
    assert codec.has_snappy()
    assert codec.has_lz4()
    assert codec.has_zstd()


@pytest.mark.parametrize("name", ["snappy", "lz4", "zstd"])
def test_codecs_round_trip(name: str) -> None:
    data = b"karrot " * 1000
    encode = getattr(codec, f"{name}_encode")
    decode = getattr(codec, f"{name}_decode")
    packed = encode(data)
    assert len(packed) < len(data)
    assert decode(packed) == data


def test_producer_compression_defaults_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KARROT_PRODUCER_COMPRESSION", raising=False)
    settings = Settings()
    assert settings.producer_compression == "none"
    assert settings.producer_compression_type is None


def test_producer_compression_reaches_faust(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KARROT_PRODUCER_COMPRESSION", "lz4")
    monkeypatch.setenv("KARROT_DATA_DIR", str(tmp_path))
    app = create_app(Settings())
    assert app.conf.producer_compression_type == "lz4"


def test_unknown_codec_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARROT_PRODUCER_COMPRESSION", "brotli")
    with pytest.raises(ValidationError, match="producer_compression"):
        Settings()
