"""``redacted``: the one function that masks credentials in a URL before it is shown anywhere.

Logs, the open health view, error answers and metrics may quote a registry URL, a DSN or an
exception message holding one; all of them go through this. Pure, no imports of the project.
"""

from __future__ import annotations

import re

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
