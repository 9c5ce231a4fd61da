"""What kind of network address a host is (loopback, wildcard, public), and how to write one in a URL."""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_wildcard(host: str) -> bool:
    """Whether binding ``host`` listens on every interface (``0.0.0.0``, ``::`` or an empty host)."""
    ip = _ip(host)
    return host == "" or (ip is not None and ip.is_unspecified)


def is_loopback(address: str) -> bool:
    """Whether the bound IP ``address`` (from ``getsockname``) is reachable from this machine only."""
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address: not loopback, private, link-local, shared, multicast,
    unspecified, reserved or documentation, including IPv4 addresses wrapped in IPv6 (mapped, 6to4, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if ip.is_site_local:
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def authority(host: str, port: int | None) -> str:
    """``host:port`` as a URL writes it (IPv6 in brackets; no port when ``port`` is None)."""
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


def reachable_host(host: str) -> str:
    """A host this machine can connect to for a server bound to ``host``: loopback for a wildcard bind."""
    if is_wildcard(host):
        return "::1" if ":" in host else "127.0.0.1"
    return host


def hostname() -> str:
    """This machine's name, for URLs other machines use to reach a server listening on every interface."""
    return socket.gethostname() or "localhost"
