"""Where a worker serves and how its peers reach it, and the checks that refuse an unsafe setup.

Every worker of a group publishes one URL (Faust's ``canonical_url``) in the group's metadata; a
table query for a key another worker owns is forwarded there. A wildcard address (``0.0.0.0``)
or one URL shared by several hosts makes every worker take every key for its own and answer with
its local zeros, so a wildcard is never advertised: bound to one, a worker advertises its host
name, as Faust itself does by default.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from pydantic import SecretStr
from yarl import URL

#: The tokens the project ships with; anyone who has read the README knows them.
DEMO_TOKENS = frozenset({"local-dev-token", "local-admin-token"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*", "[::]"})  # noqa: S104  names, not a bind


class UnsafeConfiguration(RuntimeError):
    """The worker must not start like this; the message names the variables to set."""


def is_wildcard(host: str) -> bool:
    return host.strip() in _WILDCARDS


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (all of 127.0.0.0/8, ``::1``)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def _url_host(host: str) -> str:
    # An IPv6 literal needs brackets inside a URL.
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def advertised_url(advertised: str | None, web_host: str, web_port: int) -> str:
    """``advertised`` when set; else this host's name on a wildcard bind, else the bound host."""
    if advertised:
        return advertised
    host = socket.gethostname() if is_wildcard(web_host) else web_host
    return f"http://{_url_host(host)}:{web_port}"


def serving_problems(
    *,
    bind_host: str,
    canonical_url: str,
    tokens: Iterable[SecretStr],
    allow_demo_tokens: bool,
    peer_secret_set: bool = True,
) -> list[str]:
    """Why a worker bound to ``bind_host`` and advertising ``canonical_url`` must not start."""
    problems: list[str] = []
    url = URL(canonical_url)
    if not url.host or is_wildcard(url.host):
        problems.append(
            f"the advertised URL {canonical_url!r} is not an address other workers can reach "
            "(a wildcard or no host): set KARROT_ADVERTISED_URL to this worker's own "
            "http://<host>:<port>, or bind KARROT_WEB_HOST to one address"
        )
    demo = sorted({t.get_secret_value() for t in tokens} & DEMO_TOKENS)
    if demo and not is_loopback(bind_host) and not allow_demo_tokens:
        problems.append(
            f"the web server binds {bind_host!r}, reachable from other hosts, and accepts the "
            f"publicly known token(s) {', '.join(demo)}: set KARROT_API_TOKENS and "
            "KARROT_ADMIN_TOKENS to secrets of your own, or bind KARROT_WEB_HOST=127.0.0.1, "
            "or set KARROT_ALLOW_DEMO_TOKENS=true for a demo"
        )
    # A demo may use the secret derived from its (public) tokens: it has nothing more to lose.
    if not peer_secret_set and not is_loopback(bind_host) and not allow_demo_tokens:
        problems.append(
            f"the web server binds {bind_host!r}, reachable from other hosts, and no "
            "KARROT_PEER_SECRET is set: set it, the same on every worker of the group, to a "
            "secret of at least 16 characters (workers sign the queries they forward with it)"
        )
    return problems


def check_serving(
    *,
    bind_host: str,
    canonical_url: str,
    tokens: Iterable[SecretStr],
    allow_demo_tokens: bool,
    peer_secret_set: bool,
) -> None:
    problems = serving_problems(
        bind_host=bind_host,
        canonical_url=canonical_url,
        tokens=tokens,
        allow_demo_tokens=allow_demo_tokens,
        peer_secret_set=peer_secret_set,
    )
    if problems:
        raise UnsafeConfiguration("Refusing to start: " + "; and ".join(problems))
