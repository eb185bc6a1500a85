"""The worker's transport: Faust's aiokafka transport with the project's Kafka clients."""

from __future__ import annotations

from typing import Any

from karrot_streams.runtime.kafka_clients import KarrotBatchTransport, KarrotTransport


def worker_transport(app: Any, *, batch_delivery: bool) -> Any:
    """What ``App._new_transport`` builds: the idempotent (transactional under exactly-once)
    producer, the ``read_committed`` consumer, and with ``batch_delivery`` the batch-delivery
    consumer (runtime/consumer.py).

    Faust chooses the transport class by URL scheme; the app overrides the method instead of
    registering a scheme, so ``KARROT_KAFKA_BOOTSTRAP`` stays a plain host list.
    """
    transport = KarrotBatchTransport if batch_delivery else KarrotTransport
    return transport(app.conf.broker_consumer, app)
