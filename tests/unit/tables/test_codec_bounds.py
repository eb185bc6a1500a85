"""A table value whose sums outgrow 64 bits is still written (held at the bound), not a crash."""

from __future__ import annotations

import orjson

from karrot_streams.tables.codec import INT64_MAX, OrjsonCodec, saturated


def test_a_sum_past_64_bits_is_held_at_the_bound() -> None:
    value = {"gross_amount": 4 * INT64_MAX, "sales_count": 2, "applied": {"p:0": 5}, "ok": True}
    written = OrjsonCodec()._dumps(value)
    assert orjson.loads(written) == {
        "gross_amount": INT64_MAX,
        "sales_count": 2,
        "applied": {"p:0": 5},
        "ok": True,
    }


def test_values_in_range_are_untouched() -> None:
    value = {"a": [1, -(2**63), INT64_MAX], "b": {"c": None, "d": 1.5}}
    assert saturated(value) == value
    assert OrjsonCodec()._dumps(value) == orjson.dumps(value)
