"""Read a request body without ever holding more than the configured limit."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from karrot_streams.web.http.errors import BadRequest, PayloadTooLarge

CHUNK = 64 * 1024


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body is larger than {limit} bytes", details={"maxBodyBytes": limit}
    )


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, or 413 as soon as the declared length or the bytes read pass ``limit``."""
    declared = request.content_length  # None for chunked bodies: only the read size tells
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except (ConnectionError, HttpProcessingError, web.HTTPException) as exc:
        # A malformed chunked body, or a client that went away mid-body.
        raise BadRequest(f"Request body could not be read: {exc}"[:200]) from None
    return b"".join(chunks)
