"""The type of the worker's Faust app: what views and agents may ask of it.

A module of its own, below ``web`` and the agents, so that they can name the app type without
importing ``app.py`` (which builds the app from them).
"""

from __future__ import annotations

from typing import Any

import faust

from karrot_streams.connections import check_kafka, kafka_connection
from karrot_streams.peer_auth import PeerAuth
from karrot_streams.resources import Resources
from karrot_streams.runtime.transactions import WorkerTransactions
from karrot_streams.runtime.transport import worker_transport
from karrot_streams.serving import check_serving
from karrot_streams.tables.declarations import Tables


class KarrotApp(faust.App):
    """A Faust app that also holds the worker's resources and tables."""

    resources: Resources
    #: None on a pipeline-only worker (``KARROT_ROLE=pipeline``).
    aggregates: Tables | None
    peer_auth: PeerAuth
    transactions: WorkerTransactions

    def _new_transport(self) -> Any:
        # Faust's own hook (private): the app chooses its transport class.
        resources = getattr(self, "resources", None)
        if resources is None:
            return super()._new_transport()
        return worker_transport(self, batch_delivery=resources.settings.batch_delivery)

    async def on_first_start(self) -> None:
        # Again with the configuration as it is now: ``faust worker --web-host/--web-bind``
        # change it after create_app() checked the settings.
        settings = self.resources.settings
        check_serving(
            bind_host=self.conf.web_bind,
            canonical_url=str(self.conf.canonical_url),
            tokens=(*settings.api_tokens, *settings.admin_tokens),
            allow_demo_tokens=settings.allow_demo_tokens,
            peer_secret_set=settings.peer_secret is not None,
        )
        # A wrong password or an untrusted certificate stops the worker here, with the
        # variables to fix, instead of every client retrying "Unable to bootstrap" forever.
        await check_kafka(kafka_connection(settings))
        await super().on_first_start()
