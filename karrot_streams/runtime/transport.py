"""The worker's transport: Faust's aiokafka transport with the batch-delivery consumer."""

from __future__ import annotations

from typing import Any

from karrot_streams.runtime.consumer import BatchTransport


def batch_transport(app: Any) -> Any:
    """What ``App._new_transport`` builds, with the batch-delivery consumer.

    Faust chooses the transport class by URL scheme; the app overrides the method instead of
    registering a scheme, so ``KARROT_KAFKA_BOOTSTRAP`` stays a plain host list.
    """
    return BatchTransport(app.conf.broker_consumer, app)
