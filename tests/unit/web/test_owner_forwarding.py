"""Finding the worker that owns a key: the same partition Faust's producer and tables use."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2
from yarl import URL

from karrot_streams.tables.facts import table_key
from karrot_streams.web.owner_forwarding import owner_of, partition_of, same_node


@pytest.mark.parametrize("key", ["디지털기기", "electronics", "KRW", "seller-42", ""])
def test_partition_is_the_producers_for_the_facts_key(key: str) -> None:
    expected = (murmur2(table_key(key)) & 0x7FFFFFFF) % 4
    assert partition_of(key, 4, DefaultPartitioner()) == expected


def test_owner_of() -> None:
    distribution = {
        "http://w1:6066": {"app-categories-changelog": [0, 2]},
        "http://w2:6066": {"app-categories-changelog": [1, 3], "other": [0]},
    }
    assert owner_of(distribution, "app-categories-changelog", 2) == "http://w1:6066"
    assert owner_of(distribution, "app-categories-changelog", 3) == "http://w2:6066"
    assert owner_of(distribution, "app-sellers-changelog", 0) is None
    assert owner_of({}, "app-categories-changelog", 0) is None


def test_same_node() -> None:
    assert same_node(URL("http://127.0.0.1:6066"), URL("http://127.0.0.1:6066/"))
    assert not same_node(URL("http://127.0.0.1:6067"), URL("http://127.0.0.1:6066"))
    assert not same_node(URL("http://w2:6066"), URL("http://w1:6066"))
