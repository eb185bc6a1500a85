"""Answer a key's question on the worker that owns the key's table partition.

Faust's ``table_route`` routes on the raw path parameter; ours routes on the key the table is
really keyed by (a normalised category), and forwards with a hop header so two workers that
disagree during a rebalance cannot bounce a request between them. A forwarded request is signed
with the group's peer secret (peer_auth.py) and does not carry the client's token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from karrot_streams.peer_auth import FORWARDED_HEADER, PEER_HEADER, PeerAuth, from_peer
from karrot_streams.tables.facts import table_key
from karrot_streams.web.http.errors import NotYetConsistent, ServiceUnavailable

FORWARD_TIMEOUT_S = 10.0
#: Request headers a forwarded request carries on: never ``Authorization``, the client's token
#: is for this worker only.
_FORWARDED_HEADERS = ("Accept", "Accept-Language")


def partition_of(key: str, partitions: int, partitioner: Any) -> int:
    """The partition Faust's producer gives ``key`` (serialised as the facts topics key it)."""
    every = list(range(partitions))
    return int(partitioner(table_key(key), every, every))


def owner_of(
    distribution: Mapping[str, Mapping[str, Any]], topic: str, partition: int
) -> str | None:
    """The URL of the worker holding ``partition`` of ``topic`` as an active, per the assignor."""
    for url, topics in distribution.items():
        if partition in topics.get(topic, ()):
            return url
    return None


def same_node(url: URL, canonical: URL) -> bool:
    def ident(u: URL) -> tuple[str, int]:
        return (u.host if u.scheme else u.path) or "", int(u.port or 80)

    return ident(url) == ident(canonical)


async def answer_from_owner(
    app: Any,
    table: Any,
    key: str,
    request: web.Request,
    local: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """``local()`` here if this worker owns ``key`` in ``table``, else the owner's answer."""
    if from_peer(request):
        return await local()  # one hop at most
    partition = partition_of(key, table.partitions, app.producer.partitioner)
    topic = table.changelog_topic.get_topic_name()
    owner = owner_of(app.router.table_metadata(table.name), topic, partition)
    if owner is None:
        raise ServiceUnavailable(
            "No worker owns this key's partition yet (the group is rebalancing); retry shortly",
            details={"table": table.name, "partition": partition},
        )
    if same_node(URL(owner), app.conf.canonical_url):
        return await local()
    return await forward(app.http_client, URL(owner), request, app.peer_auth, _longest_wait(app))


def is_local(app: Any, table: Any, key: str) -> bool:
    """Whether this worker holds ``key``'s partition of ``table`` as an active (its values are
    the ones the stage writes)."""
    partition = partition_of(key, table.partitions, app.producer.partitioner)
    topic = table.changelog_topic.get_topic_name()
    owner = owner_of(app.router.table_metadata(table.name), topic, partition)
    return owner is not None and same_node(URL(owner), app.conf.canonical_url)


async def ask_owner(app: Any, table: Any, key: str, path: str) -> Any:
    """``GET path`` (peer-signed) from the worker holding ``key``'s partition of ``table``: its
    JSON answer; ServiceUnavailable when no worker holds it or it does not answer."""
    partition = partition_of(key, table.partitions, app.producer.partitioner)
    topic = table.changelog_topic.get_topic_name()
    owner = owner_of(app.router.table_metadata(table.name), topic, partition)
    if owner is None:
        raise ServiceUnavailable(
            "No worker owns this key's partition yet (the group is rebalancing); retry shortly",
            details={"table": table.name, "partition": partition},
        )
    base = URL(owner)
    target = URL.build(
        scheme=base.scheme or "http", host=base.host or "localhost", port=base.port, path=path
    )
    headers = {
        FORWARDED_HEADER: "1",
        PEER_HEADER: app.peer_auth.sign("GET", target.raw_path, ""),
    }
    try:
        async with app.http_client.get(
            target, headers=headers, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        ) as answer:
            if answer.status != 200:
                raise ServiceUnavailable(
                    "The worker that owns this key could not answer",
                    details={"owner": owner, "status": answer.status},
                )
            return await answer.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailable(
            "The worker that owns this key did not answer",
            details={"owner": owner, "reason": f"{type(exc).__name__}: {exc}"[:300]},
        ) from exc


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    charset: str | None
    body: bytes

    def response(self) -> web.Response:
        return web.Response(
            body=self.body, status=self.status, content_type=self.content_type, charset=self.charset
        )


async def forward(
    session: aiohttp.ClientSession,
    owner: URL,
    request: web.Request,
    peers: PeerAuth,
    wait_s: float = 0.0,
) -> web.Response:
    return (await ask(session, owner, request, peers, wait_s)).response()


def _longest_wait(app: Any) -> float:
    """How long the owner may wait for a query's consistency tokens (web/consistency.py)."""
    return float(app.resources.settings.consistency_wait_max_s)


def forwarded_headers(request: web.Request, peers: PeerAuth) -> dict[str, str]:
    """The headers of ``request`` forwarded to a peer: signed, without the client's token."""
    headers = {
        name: request.headers[name] for name in _FORWARDED_HEADERS if name in request.headers
    }
    headers[FORWARDED_HEADER] = "1"
    headers[PEER_HEADER] = peers.sign(
        request.method, request.rel_url.raw_path, request.rel_url.raw_query_string
    )
    return headers


async def ask(
    session: aiohttp.ClientSession,
    owner: URL,
    request: web.Request,
    peers: PeerAuth,
    wait_s: float = 0.0,
) -> Answer:
    """The same request, answered by the worker at ``owner`` (which may wait ``wait_s`` for
    the query's consistency tokens before it answers)."""
    target = URL.build(
        scheme=owner.scheme or "http",
        host=owner.host or "localhost",
        port=owner.port,
        path=request.rel_url.raw_path,
        query_string=request.rel_url.raw_query_string,
        encoded=True,
    )
    headers = forwarded_headers(request, peers)
    try:
        async with session.request(
            request.method,
            target,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S + wait_s),
            allow_redirects=False,
        ) as answer:
            return Answer(answer.status, answer.content_type, answer.charset, await answer.read())
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailable(
            "The worker that owns this key did not answer",
            details={"owner": str(owner), "reason": f"{type(exc).__name__}: {exc}"[:300]},
        ) from exc


async def gather_from_peers(app: Any, table: Any, request: web.Request) -> list[Any]:
    """The JSON answers to the same request from every other worker holding part of ``table``."""
    if from_peer(request):
        return []
    peers = [
        URL(url)
        for url, topics in app.router.table_metadata(table.name).items()
        if any(topics.values()) and not same_node(URL(url), app.conf.canonical_url)
    ]
    answers = await asyncio.gather(
        *(ask(app.http_client, peer, request, app.peer_auth, _longest_wait(app)) for peer in peers)
    )
    for peer, answer in zip(peers, answers, strict=True):
        if answer.status == NotYetConsistent.status:
            raise NotYetConsistent(
                "A worker holding part of the table does not include every event of the"
                " consistency tokens yet; retry",
                details={"owner": str(peer), **(json.loads(answer.body).get("details") or {})},
            )
        if answer.status != 200:
            raise ServiceUnavailable(
                "A worker holding part of the table could not answer",
                details={"owner": str(peer), "status": answer.status},
            )
    return [json.loads(answer.body) for answer in answers]
