"""Which hosts the hub may call: RFC 1123 hostnames and, outside the local stack, public addresses only.

A store's URL is registered by an operator and then called by reconciliation and publishing, from inside
the hub's network: a URL naming the instance metadata address (169.254.169.254), a loopback, private or
link-local address would make the hub a proxy into its own network (server-side request forgery). The same
rules are applied twice: to the URL as registered (`check_url`), and to every address its host resolves to
when it is called (`refused_address`, by the transport's hook in integrations/http.py), since a public name
can resolve to a private address.

`allow_private`: the local stack's simulators listen on loopback (HUB_ALLOW_PRIVATE_HOSTS=1, set only by
`local/`); link-local, unspecified, multicast and reserved addresses are refused even then.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

MAX_HOSTNAME = 253
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC = re.compile(r"^[0-9]+$")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostRefused(ValueError):
    """A host (or a URL's) the hub will not call; the message says why, never more than the host."""


def ip_literal(host: str) -> Address | None:
    """The address `host` spells (IPv4 dotted quad, or IPv6 with or without brackets), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refused_address(address: Address, *, allow_private: bool = False) -> str | None:
    """Why the hub will not call this address (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local:
        return "a link-local address (the instance metadata service lives there)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:  # before "reserved": ::1 is in IPv6's reserved ::/8
        return None if allow_private else "a loopback address"
    if address.is_reserved:
        return "a reserved address"
    if allow_private:
        return None
    if address.is_private or not address.is_global:
        return "a private (non-public) address"
    return None


def check_hostname(host: str) -> str:
    """`host` lowercased if it is an RFC 1123 hostname (letters, digits, hyphens; labels ≤ 63, ≤ 253 in all;
    its last label not all digits, so that no number is read as an address), else HostRefused."""
    name = host.lower().removesuffix(".")
    if not name or len(name) > MAX_HOSTNAME:
        raise HostRefused("a host name is 1 to 253 characters")
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels) or _NUMERIC.match(labels[-1]):
        raise HostRefused("the host is not a valid host name (RFC 1123: letters, digits, hyphens, dots)")
    return name


def check_host(host: str, *, allow_private: bool = False) -> str:
    """A host the hub may call, as spelled in a URL (a name, or an address literal); else HostRefused."""
    address = ip_literal(host)
    if address is not None:
        why = refused_address(address, allow_private=allow_private)
        if why is not None:
            raise HostRefused(f"the host is {why}")
        return str(address)
    name = check_hostname(host)
    if not allow_private and (name in _LOCAL_NAMES or name.endswith(".localhost")):
        raise HostRefused("the host is a loopback name (localhost)")
    return name


def check_url(url: str, *, allow_private: bool = False) -> SplitResult:
    """A URL the hub may call: https (http too when private hosts are allowed, as on the local stack), no
    user-info, no spaces or control characters, a host as `check_host` accepts. Else HostRefused."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise HostRefused("the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise HostRefused("the URL cannot be read") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise HostRefused(f"the URL must be {' or '.join(schemes)}")
    if "@" in parts.netloc:
        raise HostRefused("the URL must not carry user-info (user@host)")
    if not parts.hostname:
        raise HostRefused("the URL has no host")
    check_host(parts.hostname, allow_private=allow_private)
    return parts
