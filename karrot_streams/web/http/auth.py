"""Bearer tokens, as the seed's SecurityConfig: ``/api/v1/**`` is authenticated, monitoring is open.

Pure functions; the middleware applies them. A path's openness is decided on the pattern of the
route it matched (not on the raw path), so no spelling of a URL reaches a protected view through
the open prefix.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

API_PREFIX = "/api/v1"
OPEN_PREFIX = "/api/v1/monitoring"
#: Open single paths besides the prefix: the API's own description, for clients and generators.
OPEN_PATHS = frozenset({"/api/v1/openapi.json"})


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def is_api(path: str) -> bool:
    """The paths whose every answer, errors included, is the API's JSON."""
    return _within(path, API_PREFIX)


def needs_token(path: str) -> bool:
    return is_api(path) and not _within(path, OPEN_PREFIX) and path not in OPEN_PATHS


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class TokenCheck:
    """Accepts any of the configured tokens; each comparison takes the same time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(_encoded(token) for token in tokens if token)

    def accepts(self, presented: str | None) -> bool:
        if presented is None:
            return False
        candidate = _encoded(presented)
        accepted = False
        for token in self._tokens:  # no early exit: the time does not tell which token matched
            accepted |= hmac.compare_digest(candidate, token)
        return accepted


def _encoded(token: str) -> bytes:
    return token.encode("utf-8", "surrogateescape")
