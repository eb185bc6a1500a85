"""Workers authenticate the queries they forward to each other with a secret of their own.

A forwarded query carries no client token (it would go to whatever URL the group's metadata
names, possibly over plain HTTP). Instead it carries ``X-Karrot-Peer: <unix time>.<HMAC-SHA256>``
over the time, method and path with query: the secret itself never leaves the worker, and a
signature is good for one request for ``MAX_SKEW_S`` either side. Only such a request may use
the hop header (``X-Karrot-Forwarded``: answer from local tables, do not route); from anyone
else that header is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from aiohttp import web

PEER_HEADER = "X-Karrot-Peer"
FORWARDED_HEADER = "X-Karrot-Forwarded"
#: Clocks of a group's workers agree to far better than this; a captured signature is useless
#: after it (and it only ever allowed a read the peer was allowed anyway).
MAX_SKEW_S = 60.0
#: Set by the middleware on a request that came from an authenticated peer.
FROM_PEER = web.RequestKey("karrot.from_peer", bool)


def _target(method: str, raw_path: str, raw_query: str) -> str:
    return f"{method.upper()}\n{raw_path}?{raw_query}"


class PeerAuth:
    """Signs forwarded requests and checks the signature of incoming ones."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def _mac(self, stamp: str, target: str) -> str:
        return hmac.new(self._key, f"{stamp}\n{target}".encode(), hashlib.sha256).hexdigest()

    def sign(self, method: str, raw_path: str, raw_query: str) -> str:
        stamp = str(int(self._clock()))
        return f"{stamp}.{self._mac(stamp, _target(method, raw_path, raw_query))}"

    def verify(self, value: str | None, method: str, raw_path: str, raw_query: str) -> bool:
        if not value:
            return False
        stamp, _, mac = value.strip().partition(".")
        if not stamp.isdigit() or not mac:
            return False
        if abs(self._clock() - int(stamp)) > MAX_SKEW_S:
            return False
        expected = self._mac(stamp, _target(method, raw_path, raw_query))
        return hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace"))

    def request_is_from_peer(self, request: web.Request) -> bool:
        """A hop request signed by a worker of this group (GET only: peers only read)."""
        return (
            request.method == "GET"
            and FORWARDED_HEADER in request.headers
            and self.verify(
                request.headers.get(PEER_HEADER),
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
            )
        )


def from_peer(request: web.Request) -> bool:
    """What the middleware decided about ``request`` (False for any request it did not mark)."""
    return bool(request.get(FROM_PEER, False))
