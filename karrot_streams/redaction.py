"""``redacted``: the one function that masks credentials in a URL before it is shown anywhere.

Logs, the open health view, error answers and metrics may quote a registry URL, a DSN or an
exception message holding one; all of them go through this. Pure, no imports of the project.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: Greedy up to the authority's last ``@``: a password with an unencoded ``@`` is masked whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<name>(?:^|[?&;\s])[A-Za-z_.]*(?:pass|secret|token|key)[A-Za-z_.]*)=(?P<value>[^&;\s]+)",
    re.IGNORECASE,
)
MASK = "***"


def redacted(url: str) -> str:
    """``url`` (or any text with URLs in it) with credentials masked.

    ``https://user:secret@host`` becomes ``https://user:***@host``; a lone user name, which is
    how API tokens are often passed (``https://<token>@host``), is masked entirely; query
    parameters named like a password, secret, token or key keep their name only.
    """

    def userinfo(match: re.Match[str]) -> str:
        user, has_password, _ = match["userinfo"].partition(":")
        shown = f"{user}:{MASK}" if has_password else MASK
        return f"{match['scheme']}{shown}@"

    return _SECRET_PARAM.sub(rf"\g<name>={MASK}", _USERINFO.sub(userinfo, url))


def install_log_redaction() -> None:
    """Every log record from now on, ours and every library's, with URL credentials masked.

    A library may log a URL we gave it (httpx logs each request's URL, with a registry's
    credentials if the URL holds them); the record factory is the one place all records pass.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "karrot_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        clean = redacted(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.karrot_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
