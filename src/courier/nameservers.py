"""DNS server addresses as COURIER_DNS_SERVERS gives them: checked before anything runs."""

from __future__ import annotations

import ipaddress


def check_nameserver(entry: str) -> str:
    """`entry` ("IP", "IP:port" or "[IPv6]:port") stripped; ValueError naming it if bad.

    Checked up front because c-ares would only refuse it at the first lookup, where the
    error would surface as a failed delivery instead of a worker that does not start.
    """
    text = entry.strip()
    host, port, version = text, None, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port, version = rest.removeprefix(":"), 6  # brackets only for v6 with a port
        if not rest.startswith(":"):
            host = ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
        if version is not None and address.version != version:
            raise ValueError
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError
    except ValueError:
        raise ValueError(f"{entry!r} is not an IP address with an optional :port") from None
    return text
