"""IP address and network matching, shared by the blacklist and the trusted-proxy list."""

import ipaddress
from typing import Iterable, List, Optional, Union

from ..http.request import parse_decimal

__all__ = ["IpAddress", "IpNetwork", "normalise_address", "parse_network", "parse_networks", "address_in"]

IpAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IpNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def normalise_address(address: str) -> Optional[IpAddress]:
    """The IP address in ``address``, IPv4-mapped IPv6 as IPv4; ``None`` if it is no IP address.

    A dual-stack listener reports IPv4 peers as ``::ffff:a.b.c.d``; both
    spellings must name the same peer.  A zone (``fe80::1%eth0``) is dropped.
    """
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_network(text: str) -> Optional[IpNetwork]:
    """An address (as a one-address network) or a network from ``text``; ``None`` if neither."""
    address, slash, prefix = text.strip().partition("/")
    ip = normalise_address(address)
    if ip is None:
        return None
    if not slash:
        return ipaddress.ip_network(ip)
    length = parse_decimal(prefix, 3)
    if length is None:
        return None
    if ip.version == 4 and ":" in address:
        length -= 96  # an IPv4-mapped network, e.g. ::ffff:10.0.0.0/104
    try:
        return ipaddress.ip_network("%s/%d" % (ip, length), strict=False)
    except ValueError:
        return None


def parse_networks(texts: Iterable[str]) -> List[IpNetwork]:
    """:func:`parse_network` of each text; raises ValueError naming the first bad one."""
    networks = []
    for text in texts:
        network = parse_network(text)
        if network is None:
            raise ValueError("not an IP address or network: %r" % (text,))
        networks.append(network)
    return networks


def address_in(address: str, networks: Iterable[IpNetwork]) -> bool:
    """Whether ``address`` is an IP address inside one of ``networks``."""
    ip = normalise_address(address)
    return ip is not None and any(ip in network for network in networks)
