"""Consumes imgdup.analysis.addresses: which addresses imgdup may connect to, and why not (no network)."""

from __future__ import annotations

import ipaddress

import pytest

from imgdup.analysis.addresses import AddressRefused, embedded_ipv4, judge, non_public_reason


@pytest.mark.parametrize(
    "address,why",
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("::7f00:1", "IPv4-compatible (deprecated)"),
        ("::ffff:0:7f00:1", "IPv4-translated of 127.0.0.1: loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped of 169.254.169.254: link-local (cloud metadata)"),
        ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254: link-local (cloud metadata)"),
        ("2002:7f00:1::", "6to4 of 127.0.0.1: loopback"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("fec0::1", "site-local (deprecated)"),
        ("fe80::1%eth0", "link-local"),
        ("ff02::1", "multicast"),
    ],
)
def test_the_reason_names_the_form_and_the_ipv4_inside(address: str, why: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) == why


def _local_nat64(prefix_len: int, v4: str) -> ipaddress.IPv6Address:
    """64:ff9b:1::/48 + padding to `prefix_len`, then the IPv4 address laid out as RFC 6052 says."""
    bits = f"{int(ipaddress.IPv6Address('64:ff9b:1::')):0128b}"[:48] + "0" * (prefix_len - 48)
    v4bits = f"{int(ipaddress.IPv4Address(v4)):032b}"
    if prefix_len == 96:
        layout = bits + v4bits
    else:
        before_u = 64 - prefix_len
        layout = bits + v4bits[:before_u] + "00000000" + v4bits[before_u:]
    return ipaddress.IPv6Address(int(layout.ljust(128, "0"), 2))


@pytest.mark.parametrize("prefix_len", [48, 56, 64, 96])
def test_local_use_nat64_is_read_at_every_rfc6052_length(prefix_len: int) -> None:
    address = _local_nat64(prefix_len, "169.254.169.254")
    found = embedded_ipv4(address)
    assert found is not None and ipaddress.IPv4Address("169.254.169.254") in found[1]
    assert non_public_reason(address) is not None


def test_public_unicast_and_public_embeddings_pass() -> None:
    for text in (
        "93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::",
    ):
        assert non_public_reason(ipaddress.ip_address(text)) is None, text


def test_judge_refuses_a_host_for_any_one_bad_address_and_explains() -> None:
    with pytest.raises(AddressRefused) as caught:
        judge("mixed.example.com", ["93.184.216.34", "64:ff9b::a9fe:a9fe"], [])
    assert caught.value.reason == "url_blocked"
    assert "NAT64 of 169.254.169.254" in caught.value.detail
    with pytest.raises(AddressRefused) as garbage:
        judge("odd.example.com", ["not-an-address"], [])
    assert garbage.value.reason == "dns_error"
    with pytest.raises(AddressRefused) as nothing:
        judge("empty.example.com", [], [])
    assert nothing.value.reason == "dns_error"


def test_an_allowed_network_admits_an_address_and_the_mapped_form_of_its_ipv4() -> None:
    allowed = [ipaddress.ip_network("127.0.0.1/32")]
    assert judge("demo", ["127.0.0.1", "::ffff:127.0.0.1"], allowed) == ["127.0.0.1", "::ffff:127.0.0.1"]
    with pytest.raises(AddressRefused):
        judge("demo", ["64:ff9b::7f00:1"], allowed)
