"""Which of the machine's addresses the other machines on the LAN are told to use."""

from __future__ import annotations

import pytest

from proxy.core.lan import is_loopback, lan_addresses


def test_private_addresses_of_real_interfaces_first_loopback_and_link_local_never() -> None:
    interfaces = [
        ("lo", "127.0.0.1"),
        ("docker0", "172.17.0.1"),
        ("eth0", "10.0.0.5"),
        ("eth0", "169.254.10.1"),
        ("wlan0", "192.168.1.20"),
        ("eth1", "203.0.113.7"),  # public: reachable, but after the LAN ones
        ("eth0", "10.0.0.5"),  # listed twice
        ("eth2", "not an address"),
        ("eth3", "fe80::1"),
    ]
    assert lan_addresses(interfaces) == ["10.0.0.5", "192.168.1.20", "203.0.113.7", "172.17.0.1"]
    assert lan_addresses([("lo", "127.0.0.1")]) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("127.0.0.1", True), ("127.0.1.1", True), ("[::1]", True),
     ("::1", True), ("10.0.0.5", False), ("proxy.lan", False), ("", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
