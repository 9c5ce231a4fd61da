"""Fetching an ``image_url`` without letting callers reach into the server's network.

Each hop's host is resolved here and every address it resolves to must be public (or in the test-only allowed
networks) before anything connects; the connection then goes to a checked address, so a second DNS answer
cannot swap it (DNS rebinding). Redirects are followed by hand and checked again. Every failure gets one
message, whatever the upstream said, so the server cannot be used to learn what answers where.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import httpx

from sora_nb.server.addresses import IPAddress, is_public
from sora_nb.server.errors import ApiError, invalid

MAX_REDIRECTS = 5
FETCH_SECONDS = 30.0  # the whole fetch: every lookup, hop and byte
HOP_TIMEOUT = 10.0  # each connect, read or write


@dataclass(frozen=True)
class FetchPolicy:
    """Whether ``image_url`` may be fetched at all, and which non-public networks it may reach (tests only)."""

    enabled: bool = True
    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def of(cls, enabled: bool, allowed: Iterable[str]) -> FetchPolicy:
        """A policy from config values; ValueError names a network that does not parse."""
        networks = []
        for text in allowed:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"allow_private_inputs: {text!r} is not an IP address or network") from None
        return cls(enabled, tuple(networks))

    def permits(self, ip: IPAddress) -> bool:
        """Whether a connection to ``ip`` is allowed."""
        return is_public(ip) or any(ip in network for network in self.allowed)


class _Refused(Exception):
    """The fetch cannot go on; the caller gets the one generic message."""


def _failed(param: str) -> ApiError:
    return invalid(
        f"Could not fetch {param}. The local server fetches images only from public http(s) addresses that answer "
        f"200 within {FETCH_SECONDS:.0f} s and at most {MAX_REDIRECTS} redirects (loopback, private and link-local "
        "addresses are refused); give a public image URL, a data URL, or upload the file.",
        param=param,
        code="invalid_image_url",
    )


async def _addresses(url: httpx.URL, policy: FetchPolicy) -> list[str]:
    """Every address ``url``'s host resolves to, if all of them are allowed; _Refused otherwise."""
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise _Refused
    port = url.port or (443 if url.scheme == "https" else 80)
    infos = await anyio.getaddrinfo(url.raw_host.decode("ascii"), port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    ips = [ipaddress.ip_address(address) for address in addresses]  # a scoped (%eth0) address is link-local
    if not ips or not all(policy.permits(ip) for ip in ips):
        raise _Refused
    return addresses


async def _hop(url: httpx.URL, address: str, limit: int, param: str) -> bytes | httpx.URL:
    """GET ``url`` from ``address``: the body, or the URL a redirect points at."""
    host = url.raw_host.decode("ascii")
    request_url = url.copy_with(host=address)
    headers = {"Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}  # the certificate is checked for host
    # a client per hop and no environment: no proxy, .netrc or pooled TLS connection sits between checks
    async with httpx.AsyncClient(timeout=HOP_TIMEOUT, trust_env=False) as client:
        request = client.build_request("GET", request_url, headers=headers, extensions=extensions)
        response = await client.send(request, stream=True)
        try:
            if response.has_redirect_location:
                return url.join(response.headers["location"])
            if response.status_code != 200:
                raise _Refused
            data = bytearray()
            async for chunk in response.aiter_raw():
                data += chunk
                if len(data) > limit:
                    raise invalid(
                        f"The image at {param} is larger than {limit // 2**20} MiB.",
                        param=param,
                        code="image_too_large",
                    )
            return bytes(data)
        finally:
            await response.aclose()


async def _from_any(url: httpx.URL, addresses: list[str], limit: int, param: str) -> bytes | httpx.URL:
    """One hop from the first of ``addresses`` that takes a connection (as a browser tries them in turn)."""
    for address in addresses[:-1]:
        try:
            return await _hop(url, address, limit, param)
        except httpx.ConnectError:
            pass
    return await _hop(url, addresses[-1], limit, param)


async def _follow(url: httpx.URL, policy: FetchPolicy, limit: int, param: str) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        result = await _from_any(url, await _addresses(url, policy), limit, param)
        if isinstance(result, bytes):
            return result
        url = result
    raise _Refused


async def fetch_image(url: str, param: str, policy: FetchPolicy, limit: int) -> bytes:
    """The body of ``url`` (at most ``limit`` bytes) if ``policy`` allows every hop; a 400 otherwise."""
    if not policy.enabled:
        raise invalid(
            f"{param}: this server listens beyond loopback and fetches no image URLs unless started with "
            "--allow-remote-inputs; upload the image, or give a data URL or a file_id.",
            param=param,
            code="invalid_image_url",
        )
    try:
        with anyio.fail_after(FETCH_SECONDS):
            return await _follow(httpx.URL(url), policy, limit, param)
    except (_Refused, httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError, ValueError, UnicodeError):
        raise _failed(param) from None
