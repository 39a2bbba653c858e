"""Which webhook URLs may be called: a URL is user input, and the worker sits inside the network.

An endpoint URL comes from whoever may add webhooks; the worker that POSTs to it
runs next to Redis, metadata services (``169.254.169.254``) and admin ports.
So a URL is refused unless:

* its scheme is ``http`` or ``https`` (no ``file:``, ``gopher:``, ``redis:`` ...);
* it has no credentials (``user:pass@``), and is at most
  :data:`~credits.limits.WEBHOOK_URL_CHARS_MAX` characters;
* **every** address its host resolves to is a public unicast address: not
  loopback, private (RFC 1918, ``fc00::/7``), link-local, shared (``100.64/10``),
  multicast, reserved or unspecified, also when hidden inside IPv6
  (``::ffff:127.0.0.1``, NAT64, 6to4, Teredo).

The check runs when the endpoint is added and again at every delivery run
(a DNS answer can change after the check: DNS rebinding), and the request is
then sent to the very address that was checked, with the original host name
as ``Host`` and TLS server name, so a second lookup cannot swap it. Redirects
are never followed. ``CREDITS_WEBHOOK_ALLOW_PRIVATE=1`` lifts the address
rule (for development and tests, with a receiver on loopback); the other
rules stay.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from credits import limits
from credits.errors import InvalidInputError
from credits.validation import check_encodable

SCHEMES: Final = {"http": 80, "https": 443}
_LABEL: Final = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
HOST_CHARS_MAX: Final = 253
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_WHITESPACE_OR_CONTROL: Final = re.compile(r"[\x00-\x20\x7f-\x9f]")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A URL that passed the static checks: where to connect, and what to ask for."""

    url: str
    scheme: str
    host: str  # lowercase name or IP literal (no brackets), as the TLS name and Host header
    port: int
    target: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == SCHEMES[self.scheme] else f"{shown}:{self.port}"

    def literal(self) -> Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def check_url(url: object) -> WebhookUrl:
    """The static rules (scheme, credentials, length, host and port); no network I/O."""
    if not isinstance(url, str):
        raise InvalidInputError(f"url must be a str, got {type(url).__name__}")
    if not 1 <= len(url) <= limits.WEBHOOK_URL_CHARS_MAX:
        raise InvalidInputError(f"url must be 1 to {limits.WEBHOOK_URL_CHARS_MAX} characters")
    check_encodable("url", url)
    if _WHITESPACE_OR_CONTROL.search(url):
        raise InvalidInputError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"url is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInputError(f"url must be http:// or https://, not {parts.scheme[:16]!r}:")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise InvalidInputError("url must not carry credentials (user:password@)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInputError("url has no host")
    if port == 0:
        raise InvalidInputError("url port must be 1 to 65535")
    literal = _ip_literal(host)
    if literal is None:
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidInputError("url host is not a valid host name") from None
        if not _valid_host_name(ascii_host):
            raise InvalidInputError("url host is not a valid host name")
        host = ascii_host
    else:
        host = str(literal)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookUrl(url=url, scheme=scheme, host=host, port=port or SCHEMES[scheme],
                      target=target)  # fmt: skip


def _valid_host_name(host: str) -> bool:
    """DNS labels of 1 to 63 letters, digits, ``-`` or ``_`` (checked label by label)."""
    return len(host) <= HOST_CHARS_MAX and all(_LABEL.match(label) for label in host.split("."))


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_public(address: Address) -> bool:
    """A global unicast address, also looking inside IPv6 forms that carry an IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(not is_public(inner) for inner in embedded):
            return False
    return bool(
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_loopback
        and not address.is_link_local
        and not address.is_private
    )


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, in resolver order (no duplicates)."""
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidInputError(f"cannot resolve the webhook host {host!r}: {exc}") from None
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise InvalidInputError(f"the webhook host {host!r} has no address")
    return found


def check_addresses(host: str, addresses: list[Address], *, allow_private: bool) -> list[Address]:
    """``addresses`` if every one may be called; :class:`InvalidInputError` naming the first not."""
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise InvalidInputError(
                    f"the webhook host {host!r} resolves to {address}, a loopback, private or "
                    "reserved address; webhooks go to public addresses only "
                    "(CREDITS_WEBHOOK_ALLOW_PRIVATE=1 allows others, for development)"
                )
    return addresses


def allowed_addresses(url: WebhookUrl, *, allow_private: bool) -> list[Address]:
    """Resolve ``url``'s host now and check every address (at add time and at each run)."""
    return check_addresses(url.host, resolve(url.host, url.port), allow_private=allow_private)
