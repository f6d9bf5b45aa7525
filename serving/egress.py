"""Where the server may send webhooks: public addresses only, unless an allow-list names them.

A webhook URL is chosen by whoever holds an admin key; without this check the server would POST
to its own loopback services, the cloud's metadata endpoint (169.254.169.254) or the plant's
private network on their behalf (server-side request forgery). So:

- the URL must be a plain ``http(s)://host[:port]/path``: no credentials, whitespace or control
  characters, a host and a valid port (:func:`parse_receiver_url`);
- its host is resolved (``socket.getaddrinfo``) and **every** address it resolves to must be
  public: numeric spellings such as ``2130706433`` or ``0x7f.1`` are what the resolver turns
  into 127.0.0.1, so the check is on the resolved addresses, never on the text; IPv4 addresses
  carried inside IPv6 ones (``::ffff:127.0.0.1``, 6to4, Teredo) are checked as IPv4;
- this happens at registration and again before every send, and the send goes to the very
  address that was checked (:meth:`Receiver.pinned`), so a name that resolves to a public address
  at registration and to 10.0.0.1 later (DNS rebinding) is refused then;
- ``OTD_RISK_WEBHOOK_ALLOW_HOSTS`` (``WebhookConfig.allow_hosts``) names the exceptions: a host
  as written in the URL, ``host:port``, or a network in CIDR (tests and on-premises receivers).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from data.urls import redact_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., Sequence[tuple]]
"""``socket.getaddrinfo``'s signature; tests of DNS rebinding pass one whose answer changes."""

ALLOW_SETTING = "OTD_RISK_WEBHOOK_ALLOW_HOSTS"
DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidReceiverURL(ValueError):
    """The URL is not one the server will send to (malformed, or it carries credentials)."""


class ReceiverRefused(ValueError):
    """The receiver's host is or resolves to an address that is not public and not allowed."""


class ReceiverUnresolvable(ValueError):
    """The receiver's host does not resolve (refused at registration; retried at a send)."""


@dataclass(frozen=True)
class AllowList:
    """Receivers allowed although not public: host names (as written in the URL), ``host:port``
    and networks. An IP address entry is a one-address network."""

    names: frozenset[str] = frozenset()
    name_ports: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    network_ports: tuple[tuple[IPNetwork, int], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        names: set[str] = set()
        name_ports: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        network_ports: list[tuple[IPNetwork, int]] = []
        for raw in entries:
            host, port = _split_entry(raw)
            network: IPNetwork | None
            try:
                network = ipaddress.ip_network(host, strict=False)
            except ValueError:
                network = None
            if network is not None:
                if port is None:
                    networks.append(network)
                else:
                    network_ports.append((network, port))
            elif port is None:
                names.add(host)
            else:
                name_ports.add((host, port))
        return cls(frozenset(names), frozenset(name_ports), tuple(networks), tuple(network_ports))

    def allows_name(self, host: str, port: int) -> bool:
        return host in self.names or (host, port) in self.name_ports

    def allows_address(self, address: IPAddress, port: int) -> bool:
        address = _embedded_ipv4(address) or address
        return any(address in n for n in self.networks) or any(
            address in n and port == p for n, p in self.network_ports
        )

    def __bool__(self) -> bool:
        return bool(self.names or self.name_ports or self.networks or self.network_ports)


@dataclass(frozen=True)
class Receiver:
    """A parsed receiver URL; ``host`` is lower-case, without brackets or a trailing dot."""

    url: str
    scheme: str
    host: str
    port: int

    def pinned(self, address: IPAddress) -> tuple[str, dict[str, str], dict[str, str]]:
        """(URL, headers, httpx extensions) that send this receiver's request to ``address``
        itself: the URL names the address, ``Host`` and TLS's server name keep the host (so
        certificates are still checked against it). No second DNS lookup happens on the way."""
        if _literal_address(self.host) is not None:
            return self.url, {}, {}
        parts = urlsplit(self.url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        name = self.host.encode("idna").decode("ascii")
        port = f":{self.port}" if parts.port is not None else ""
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{literal}{port}" if userinfo else f"{literal}{port}"
        url = urlunsplit(parts._replace(netloc=netloc))
        extensions = {"sni_hostname": name} if self.scheme == "https" else {}
        return url, {"Host": name + port}, extensions


def parse_receiver_url(url: str, *, allow_credentials: bool = False) -> Receiver:
    """The receiver of ``url``, or :class:`InvalidReceiverURL` saying what is wrong with it.

    ``allow_credentials`` is for URLs registered before credentials were refused: they are
    still sent to (never shown), but no new one is accepted."""
    shown = redact_url(url)
    bad = next((c for c in url if c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise InvalidReceiverURL(
            f"the webhook URL {shown!r} contains {_char_name(bad)}; percent-encode it "
            "(a space is %20) or remove it"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidReceiverURL(
            f"the webhook URL {shown!r} is malformed ({exc}); give the full address, "
            "e.g. https://example.com/otd-hook"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidReceiverURL(
            f"the webhook URL {shown!r} is not an http(s) URL; give the full address, "
            "e.g. https://example.com/otd-hook"
        )
    if "@" in parts.netloc and not allow_credentials:
        raise InvalidReceiverURL(
            f"the webhook URL {shown!r} carries a user name or password; remove them: "
            "receivers authenticate otd-risk by the X-OTD-Signature header, verified with the "
            "webhook's secret (docs/integrations.md)"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidReceiverURL(
            f"the webhook URL {shown!r} has no host; give the full address, "
            "e.g. https://example.com/otd-hook"
        )
    if _literal_address(host) is None:
        try:
            host.encode("idna")
        except UnicodeError:
            raise InvalidReceiverURL(
                f"the webhook URL {shown!r} has an invalid host name {host!r}"
            ) from None
    return Receiver(url, scheme, host, DEFAULT_PORTS[scheme] if port is None else port)


def check_receiver(
    receiver: Receiver, allow: AllowList, resolve: Resolver | None = None
) -> list[IPAddress]:
    """The addresses ``receiver`` resolves to, all of them allowed; else
    :class:`ReceiverRefused` (an address is not public) or :class:`ReceiverUnresolvable`.

    A host named in the allow-list is allowed whatever it resolves to; otherwise every address
    must be public or inside an allowed network."""
    named = allow.allows_name(receiver.host, receiver.port)
    addresses = _resolve(receiver, resolve or socket.getaddrinfo)
    if named:
        return addresses
    for address in addresses:
        why = not_public(address)
        if why and not allow.allows_address(address, receiver.port):
            what = f"{'an' if why[0] in 'aeiou' else 'a'} {why} address"
            literal = _literal_address(receiver.host) == address
            said = f"is {what}" if literal else f"resolves to {address}, {what}"
            raise ReceiverRefused(
                f"the webhook receiver {redact_url(receiver.url)!r} {said}: otd-risk only "
                "sends to public addresses. For a receiver on this machine or your own network, "
                f"name it in {ALLOW_SETTING} (a JSON list of hosts, host:port or networks, "
                f"e.g. '[\"{address}\"]') and restart the server"
            )
    return addresses


def not_public(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (e.g. ``"loopback"``), or None."""
    address = _embedded_ipv4(address) or address
    for why, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return why
    return None if address.is_global else "non-public"


def _resolve(receiver: Receiver, resolve: Resolver) -> list[IPAddress]:
    try:
        infos = resolve(receiver.host, receiver.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ReceiverUnresolvable(
            f"the webhook receiver's host {receiver.host!r} does not resolve ({exc}); check the "
            "spelling, or that this server's DNS knows it"
        ) from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ReceiverUnresolvable(f"the webhook receiver's host {receiver.host!r} has no address")
    return addresses


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped ``::ffff:a.b.c.d``, 6to4, Teredo)."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split_entry(raw: str) -> tuple[str, int | None]:
    """An allow-list entry as (host or network, port or None)."""
    text = str(raw).strip().lower()
    if not text:
        raise ValueError(f"{ALLOW_SETTING}: an empty entry; give hosts, host:port or networks")
    if text.startswith("["):  # [::1] or [::1]:8080
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError(f"{ALLOW_SETTING}: cannot read the entry {raw!r}")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, an IPv4 address or network, or an IPv6 address or network unbracketed
        host, port = text, None
    if port is None:
        return host.rstrip("."), None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{ALLOW_SETTING}: the entry {raw!r} has an invalid port {port!r}")
    return host.rstrip("."), int(port)


def _char_name(char: str) -> str:
    names = {" ": "a space", "\r": "a carriage return (CR)", "\n": "a line feed (LF)"}
    return names.get(char, f"the control or space character U+{ord(char):04X}")
