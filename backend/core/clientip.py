"""The address a request came from, for rate limits and login lockouts.

`X-Forwarded-For` is written by whoever sent the request, so it is believed only as
far as the proxies the deployment says it runs (`STATELAB_TRUSTED_PROXIES`): each
trusted proxy appends the address it received the request from, and the entry the
outermost trusted proxy appended is the client. Entries further left were written by
the client and are ignored. With no trusted proxy (the default) the header is ignored
and the peer of the connection (`REMOTE_ADDR`) is the client.

This is Django REST framework's `NUM_PROXIES` rule (`BaseThrottle.get_ident`), which
the settings set to the same number, with one addition: an entry that is not an IP
address (a proxy chain shorter than configured) falls back to `REMOTE_ADDR`, so that
a made-up value never becomes a key of its own.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest

if TYPE_CHECKING:
    from rest_framework.request import Request


def _canonical(value: str) -> str | None:
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def client_ip(request: HttpRequest | Request) -> str:
    """The client's address under the trusted-proxy rule above ('' when unknown)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    remote = _canonical(remote) or remote
    proxies = int(getattr(settings, "STATELAB_TRUSTED_PROXIES", 0))
    if proxies <= 0:
        return remote
    header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    forwarded = [a.strip() for a in header.split(",") if a.strip()]
    if not forwarded:
        return remote
    return _canonical(forwarded[-min(proxies, len(forwarded))]) or remote
