"""What an image reference may reach: local files inside allowed folders, public URLs.

A person at their own command line may name any file; a server's client may not. The
LangGraph server reads local paths only inside the folders named by `BRUSHEDIT_INPUT_ROOTS`
(none by default), and every refused path gets one answer, whether it does not exist, is a
folder, is not an image or is only someone else's: a client cannot map the server's disk. No
context fetches a URL whose host resolves to a loopback, link-local, private or otherwise
non-public address (unless `BRUSHEDIT_ALLOW_PRIVATE_URLS=1`): every address the name resolves
to is checked, the connection is pinned to a checked address (so DNS cannot change its answer
in between), and each redirect is checked the same way. A refused URL gets one answer too,
whatever listens at its port.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

from tools.errors import InvalidImageError

MAX_REFERENCE_BYTES = 50 * 1024 * 1024
"""Largest image a URL or data: URI may deliver (checked while reading)."""
FETCH_TIMEOUT_S = 30.0
"""Total time a URL may take to deliver its image (not per read: a trickling server is cut)."""
FETCH_READ_TIMEOUT_S = 10.0
MAX_REDIRECTS = 5


def parse_roots(value: str | None) -> tuple[Path, ...]:
    """Folders from an `os.pathsep`-separated setting (`BRUSHEDIT_INPUT_ROOTS`)."""
    return tuple(Path(part.strip()).expanduser() for part in (value or "").split(os.pathsep)
                 if part.strip())


@dataclass(frozen=True)
class InputAccess:
    """The local files and URLs image references may reach in one run context.

    Attributes:
        roots: folders local paths must lie in (after resolving `..` and symlinks); None lets
            any path through (a person's own command line, a Python caller), `()` none.
        allow_private_urls: also fetch URLs of loopback, link-local and private addresses.
    """

    roots: tuple[Path, ...] | None = None
    allow_private_urls: bool = False

    def local_path(self, text: str, what: str = "image") -> Path:
        """The file a path reference names, or the one refusal for anything outside the roots."""
        given = Path(text).expanduser()
        if self.roots is None:
            return given
        refused = InvalidImageError(
            f"the {what} reference is not a file this server reads: local paths are read only "
            "inside the server's input folders (BRUSHEDIT_INPUT_ROOTS); send a data: URI, a "
            "public http(s) URL or a stored image's hash instead"
        )
        roots = [Path(os.path.realpath(root)) for root in self.roots]
        candidates = [given] if given.is_absolute() else [root / given for root in roots]
        for candidate in candidates:
            try:  # a NUL byte, a name too long, a loop of links: refused alike
                real = Path(os.path.realpath(candidate))
                if any(real == root or real.is_relative_to(root) for root in roots) and \
                        real.is_file():
                    return real
            except (OSError, ValueError):
                continue
        raise refused

    def fetch(self, url: str, what: str = "image") -> bytes:
        """The bytes at an http(s) URL: under a total deadline and a size cap, every hop's
        address checked unless private addresses are allowed."""
        import httpx

        deadline = time.monotonic() + FETCH_TIMEOUT_S
        shown = shown_url(url)
        try:
            with httpx.Client(timeout=min(FETCH_READ_TIMEOUT_S, FETCH_TIMEOUT_S),
                              follow_redirects=False, trust_env=False) as client:
                for _hop in range(MAX_REDIRECTS + 1):
                    response = client.send(self._request(client, url, what), stream=True)
                    try:
                        if response.is_redirect and response.headers.get("location"):
                            url = urljoin(url, response.headers["location"])
                            shown = shown_url(url)
                            continue
                        return _body(response, what, shown, deadline)
                    finally:
                        response.close()
        except InvalidImageError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: unparsable
            raise InvalidImageError(f"could not fetch the {what} from {shown} ({exc})") from None
        raise InvalidImageError(
            f"the {what} URL {shown} redirected more than {MAX_REDIRECTS} times")

    def _request(self, client: object, url: str, what: str) -> object:
        """The request for `url`, sent to a checked address (the URL's own when private
        addresses are allowed)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise InvalidImageError(
                f"the {what} URL {shown_url(url)} is not an http(s) URL with a host name")
        if self.allow_private_urls:
            return client.build_request("GET", url)  # type: ignore[attr-defined]
        address = _public_address(parts.hostname, parts.port or (
            443 if parts.scheme.lower() == "https" else 80), what, url)
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        pinned = urlunsplit(parts._replace(netloc=netloc))
        host = parts.netloc.rpartition("@")[2]
        return client.build_request(  # type: ignore[attr-defined]
            "GET", pinned, headers={"Host": host},
            extensions={"sni_hostname": parts.hostname})


def _public_address(host: str, port: int, what: str, url: str) -> str:
    """One address `host` resolves to, after checking that every one of them is public."""
    refused = InvalidImageError(
        f"the {what} URL {_shown_host(url)} points at a loopback, link-local or private "
        "address, which this server does not fetch (BRUSHEDIT_ALLOW_PRIVATE_URLS=1 on the "
        "server allows it); send the image itself as a data: URI instead"
    )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidImageError(
            f"could not fetch the {what} from {_shown_host(url)} (its host name does not "
            "resolve)") from None
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    if not addresses or not all(_is_public(address) for address in addresses):
        raise refused
    return addresses[0]


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6:
        for embedded in _embedded_ipv4(ip):
            if not _is_public(str(embedded)):
                return False
    return ip.is_global and not ip.is_multicast


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries to: mapped (`::ffff:127.0.0.1`), 6to4,
    Teredo's server and client, IPv4-compatible (`::127.0.0.1`) and NAT64 (`64:ff9b::7f00:1`)."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if int(ip) >> 32 == 0 and int(ip) > 1:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if any(ip in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def _body(response: object, what: str, shown: str, deadline: float) -> bytes:
    status = response.status_code  # type: ignore[attr-defined]
    if status >= 400:
        raise InvalidImageError(f"the {what} URL answered HTTP {status}: {shown}")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():  # type: ignore[attr-defined]
        size += len(chunk)
        if size > MAX_REFERENCE_BYTES:
            raise InvalidImageError(f"the {what} at {shown} is over {MAX_REFERENCE_BYTES >> 20} MB")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise InvalidImageError(
                f"the {what} at {shown} took over {FETCH_TIMEOUT_S:g} s to arrive; give a "
                "faster URL or the image itself")
    return b"".join(chunks)


def _shown_host(url: str) -> str:
    """A refused URL as an answer may show it: scheme and host only (no port: the answer must
    not tell which ports listen)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "the given URL"
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}"


def shown_url(url: str) -> str:
    """The URL as an error message may show it: no user, password or query (they carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the given URL"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}{port}{parts.path}" + ("?…" if parts.query else "")
    return shown if len(shown) <= 200 else shown[:200] + "…"
