"""The destination guard's policy (SPEC §10.2): parsing the settings and judging addresses.

Pure functions: the addresses below are only compared, never connected to.
"""

from __future__ import annotations

import ipaddress

import pytest

from tasks_server.executor.guard import DestinationGuard, host_address, parse_ranges
from tasks_server.settings import SettingsError, load_settings

DENY = "refused by DESTINATION_DENY"
ALLOW = "refused by DESTINATION_ALLOW"


def test_default_denies_link_local_and_metadata_only() -> None:
    guard = load_settings().destination_guard
    assert guard.refusal("169.254.169.254") == f"destination 169.254.169.254 {DENY}"
    assert guard.refusal("fe80::1") == f"destination fe80::1 {DENY}"
    for metadata in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192"):
        assert guard.refusal(metadata) == f"destination {metadata} {DENY}"
    for allowed in ("127.0.0.1", "10.1.2.3", "::1", "192.0.2.1", "100.100.100.201", "fd00::1"):
        assert guard.refusal(allowed) is None


@pytest.mark.parametrize(
    ("word", "inside", "outside"),
    [
        (
            "loopback",
            ["127.0.0.1", "127.255.0.9", "::1", "0.0.0.0", "0.1.2.3", "::"],
            ["128.0.0.1", "1.0.0.0", "::1:0:0:1", "2001:db8::1"],
        ),
        (
            "private",
            ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "fd00::1"],
            ["172.32.0.1", "100.128.0.1", "11.0.0.1", "fe00::1"],
        ),
        ("link-local", ["169.254.0.1", "fe80::abcd"], ["169.255.0.1", "fec0::1"]),
        (
            "metadata",
            ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"],
            ["169.254.169.253", "fd00:ec2::253", "100.100.100.201", "168.63.129.17"],
        ),
    ],
)
def test_words(word: str, inside: list[str], outside: list[str]) -> None:
    guard = DestinationGuard.parse(word, None)
    assert all(guard.refusal(ip) for ip in inside)
    assert not any(guard.refusal(ip) for ip in outside)


def test_ipv4_mapped_ipv6_is_judged_as_ipv4() -> None:
    guard = DestinationGuard.parse("127.0.0.2/32", None)
    assert guard.refusal("::ffff:127.0.0.2") == f"destination 127.0.0.2 {DENY}"
    assert guard.refusal(ipaddress.IPv6Address("::ffff:7f00:2")) == f"destination 127.0.0.2 {DENY}"
    assert guard.refusal("::ffff:127.0.0.1") is None


@pytest.mark.parametrize(
    "spelling",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:0.0.0.0",
        "::127.0.0.1",  # IPv4-compatible
        "64:ff9b::127.0.0.1",  # NAT64
        "64:ff9b:1::7f00:1",  # local-use NAT64
        "2002:7f00:1::1",  # 6to4
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    ],
)
def test_ipv6_spellings_of_a_refused_ipv4_address_are_refused(spelling: str) -> None:
    guard = DestinationGuard.parse("loopback", None)
    assert guard.refusal(spelling) is not None
    assert guard.refusal(ipaddress.IPv6Address(spelling)) is not None
    assert DestinationGuard.parse("10.0.0.0/8", None).refusal(spelling) is None


def test_allow_list_refuses_the_rest_and_deny_wins() -> None:
    guard = DestinationGuard.parse("127.0.0.9/32", "127.0.0.0/24, ::1")
    assert guard.refusal("127.0.0.1") is None and guard.refusal("::1") is None
    assert guard.refusal("127.0.1.1") == f"destination 127.0.1.1 {ALLOW}"
    assert guard.refusal("127.0.0.9") == f"destination 127.0.0.9 {DENY}"


def test_parse_ranges() -> None:
    assert parse_ranges(" loopback , 10.0.0.0/8,,fd00::/8 ") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("0.0.0.0/8"),
        ipaddress.ip_network("::/128"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert parse_ranges("none") == () and parse_ranges("LOOPBACK") == parse_ranges("loopback")
    assert parse_ranges("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)  # host bits ok


@pytest.mark.parametrize("name", ["DESTINATION_DENY", "DESTINATION_ALLOW"])
@pytest.mark.parametrize("value", ["10.0.0.0/33", "everything", "127.0.0.1,bogus", "::1/200"])
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=rf"^invalid setting {name}: .*neither a CIDR"):
        load_settings()


def test_settings_build_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION_DENY", "none")
    monkeypatch.setenv("DESTINATION_ALLOW", "loopback")
    guard = load_settings().destination_guard
    assert guard.refusal("169.254.169.254") == f"destination 169.254.169.254 {ALLOW}"
    assert guard.refusal("127.0.0.1") is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("::1", "::1"),
        ("0", "0.0.0.0"),
        ("0.0.0.0", "0.0.0.0"),
        ("[::]", "::"),
        ("example.test", None),
        ("1password.test", None),
        ("localhost", None),
    ],
)
def test_host_address_reads_every_literal_form(host: str, address: str | None) -> None:
    assert host_address(host) == (ipaddress.ip_address(address) if address else None)


@pytest.mark.parametrize(
    ("deny", "allow", "loopback", "private"),
    [
        ("link-local,metadata", None, True, True),
        ("loopback,private", None, False, False),
        ("127.0.0.0/8,::1", None, True, True),  # 0.0.0.0 and :: still reach this host
        ("loopback,10.0.0.0/8", None, False, True),  # partly refused is reached
        ("none", "203.0.113.0/24", False, False),
        ("none", "127.0.0.1/32", True, False),
    ],
)
def test_reaches_says_whether_any_address_of_a_range_is_allowed(
    deny: str, allow: str | None, loopback: bool, private: bool
) -> None:
    guard = DestinationGuard.parse(deny, allow)
    assert (guard.reaches("loopback"), guard.reaches("private")) == (loopback, private)
