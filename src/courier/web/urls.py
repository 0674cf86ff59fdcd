"""Which destination URLs the API accepts (checked on create and on PATCH).

http or https only, a host, no user-info (credentials in a URL end up in logs), and
https unless COURIER_ALLOW_PRIVATE_DESTINATIONS. A literal loopback, private or otherwise
non-public IP, or `localhost`, is refused unless private destinations are allowed or the
address is inside COURIER_ALLOWED_NETWORKS. Names that resolve to such addresses are
caught again by the webhook adapter when it connects.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from courier.adapters.addresses import is_forbidden_address, parse_networks
from courier.settings import Settings


def url_problem(url: str, settings: Settings) -> str | None:
    """Why `url` is refused as a destination, or None when it is accepted."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "scheme must be https (or http where allowed)"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not contain user-info (credentials)"
    host = parts.hostname
    if not host:
        return "must name a host"
    if port == 0:
        return "port must be between 1 and 65535"
    if parts.scheme != "https" and not settings.allow_private_destinations:
        return "must use https"
    return _host_problem(host, settings)


def _host_problem(host: str, settings: Settings) -> str | None:
    """Why a URL's host is refused (localhost, a literal non-public IP outside
    COURIER_ALLOWED_NETWORKS), or None; anything goes where private ones are allowed."""
    if settings.allow_private_destinations:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return "must not point at localhost"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: resolved and checked when delivering or connecting
    try:
        allowed = parse_networks(settings.allowed_network_list())
    except ValueError:
        allowed = ()
    reason = is_forbidden_address(ip, allowed)
    if reason is not None:
        return f"must not point at a {reason} address"
    return None


def broker_url_problem(url: str, schemes: frozenset[str], settings: Settings) -> str | None:
    """Why `url` is refused as a broker's URL (`config.url`), or None when it is accepted.

    Unlike a webhook URL it may carry credentials (the field is secret). The same address
    rules apply: loopback and private hosts only where allowed; names are checked again
    by the adapter when it connects.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in schemes:
        return "scheme must be one of " + ", ".join(sorted(schemes))
    host = parts.hostname
    if not host:
        return "must name a host"
    if port == 0:
        return "port must be between 1 and 65535"
    return _host_problem(host, settings)
