"""imgdup.http.auth without HTTP: credential entries and their hashes, the caller's address behind
trusted proxies, who a header makes the caller, and the limiter that throttles wrong guesses."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from imgdup.http import auth
from imgdup.http.auth import Access, Authenticator, CredentialError, Outcome, Principal
from imgdup.http.limits import RateLimiter

TOKEN = "s3cret-token-for-tests-0123"


def _authenticator(
    entries: str = "", token: str | None = TOKEN, proxies: tuple[str, ...] = ()
) -> Authenticator:
    return Authenticator(token, entries, proxies)


def test_a_new_credential_is_a_token_and_an_entry_holding_only_its_hash() -> None:
    token, entry = auth.new_credential("portal", "ingest+viewer")
    name, secret = token.split(":", 1)
    assert name == "portal" and len(secret) >= 40 and secret not in entry
    assert entry == f"portal:ingest+viewer:sha256:{hashlib.sha256(secret.encode()).hexdigest()}"
    caller = _authenticator(entry).authenticate(f"Bearer {token}", None, {})
    assert caller == Principal(name="portal", roles=("ingest", "viewer"), via="credential")
    assert isinstance(caller, Principal) and caller.access == {Access.ANY, Access.INGEST, Access.READ}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("portal:ingest", "hash"),
        ("portal:ingest:md5:abcd", "hash"),
        ("portal:ingest:sha256:abcd", "hash"),
        ("portal:root:sha256:" + "0" * 64, "roles"),
        ("portal::sha256:" + "0" * 64, "roles"),
        ("por tal:ingest:sha256:" + "0" * 64, "name"),
        ("portal:ingest:scrypt:1024:8:1:00:00", "hash"),  # too cheap a cost
    ],
)
def test_malformed_entries_are_refused_by_number_without_their_hash(entry: str, problem: str) -> None:
    with pytest.raises(CredentialError, match=problem) as refused:
        auth.parse_credentials("# comment line\n" + entry)
    assert "entry 1" in str(refused.value)
    assert entry.split(":", 2)[-1] not in str(refused.value)  # never the stored hash


def test_entries_by_line_or_comma_and_no_name_twice() -> None:
    _t1, one = auth.new_credential("a", "viewer")
    _t2, two = auth.new_credential("b", "metrics")
    assert set(auth.parse_credentials(f"{one}, {two}  # two of them\n\n")) == {"a", "b"}
    with pytest.raises(CredentialError, match="used twice"):
        auth.parse_credentials(f"{one}\n{one}")


def test_scrypt_entries_are_verified_once_then_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = f"ana:moderator:{auth.hash_secret('correct horse battery', 'scrypt', n=2**14)}"
    authenticator = _authenticator(entry)
    calls: list[int] = []
    real = hashlib.scrypt

    def counted(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    for _ in range(3):
        caller = authenticator.authenticate("Bearer ana:correct horse battery", None, {})
        assert isinstance(caller, Principal) and caller.roles == ("moderator",)
    assert len(calls) == 1
    assert authenticator.authenticate("Bearer ana:wrong horse battery", None, {}) is Outcome.WRONG


@pytest.mark.parametrize(
    ("authorization", "outcome"),
    [
        (None, Outcome.NONE),
        ("Bearer", Outcome.WRONG),
        ("Bearer ", Outcome.WRONG),
        ("Token " + TOKEN, Outcome.WRONG),
        ("Bearer unknown:secret", Outcome.WRONG),
        ("Bearer no-colon", Outcome.WRONG),
    ],
)
def test_missing_and_wrong_credentials(authorization: str | None, outcome: Outcome) -> None:
    assert _authenticator().authenticate(authorization, "203.0.113.1", {}) is outcome


def test_the_api_token_has_full_access_and_one_key_however_it_is_spelt() -> None:
    authenticator = _authenticator()
    callers = [
        authenticator.authenticate(header, None, {}) for header in (f"Bearer {TOKEN}", f"bearer   {TOKEN}  ")
    ]
    assert callers[0] == callers[1]
    assert isinstance(callers[0], Principal) and callers[0].access == set(Access)
    assert TOKEN not in callers[0].key


def test_proxy_identity_needs_a_trusted_peer_and_known_roles() -> None:
    authenticator = _authenticator(token=None, proxies=("10.0.0.0/8", "fd00::/8"))
    identity = {auth.ROLE_HEADER: "viewer", auth.USER_HEADER: "rui"}
    assert authenticator.authenticate(None, "10.9.9.9", identity) == Principal("rui", ("viewer",), "proxy")
    assert authenticator.authenticate(None, "fd00::1", identity) == Principal("rui", ("viewer",), "proxy")
    assert authenticator.authenticate(None, "192.0.2.1", identity) is Outcome.NONE
    assert authenticator.authenticate(None, "10.9.9.9", {auth.ROLE_HEADER: "admin"}) is Outcome.WRONG
    # A bearer credential, when sent, is what counts.
    assert authenticator.authenticate("Bearer nope", "10.9.9.9", identity) is Outcome.WRONG


def test_open_mode_lets_everyone_in_with_full_access() -> None:
    authenticator = Authenticator(None, "", (), open_access=True)
    assert authenticator.authenticate("Bearer whatever", None, {}) is auth.OPEN
    assert auth.OPEN.may(Access.MODERATE)
    # Configured but empty (a credentials file of comments only): nobody gets in.
    assert Authenticator(None, "# none yet", ()).authenticate("Bearer x:y", None, {}) is Outcome.WRONG


TRUSTED = auth.parse_networks(["10.0.0.0/8", "192.0.2.10/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # untrusted peer: its header is ignored
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),  # the left part is the client's word
        ("10.0.0.2", ["198.51.100.1, 192.0.2.10"], "198.51.100.1"),  # through two trusted hops
        ("10.0.0.2", ["198.51.100.1", "10.0.0.9"], "198.51.100.1"),  # headers in order
        ("10.0.0.2", ["garbage"], "10.0.0.2"),
        ("10.0.0.2", ["garbage, 10.0.0.5"], "10.0.0.5"),
        ("10.0.0.2", ["10.0.0.3"], "10.0.0.3"),  # only proxies: the furthest one
        ("10.0.0.2", ["[2001:db8::1]"], "2001:db8::1"),
        (None, ["198.51.100.1"], "?"),
    ],
)
def test_client_address_after_trusted_proxies(peer: str | None, forwarded: list[str], client: str) -> None:
    assert auth.client_address(peer, forwarded, TRUSTED) == client


def test_a_bad_proxy_range_is_refused() -> None:
    with pytest.raises(ValueError, match="IMGDUP_TRUSTED_PROXIES"):
        auth.parse_networks(["10.0.0.0/33"])


def test_peek_spends_nothing_and_remembers_no_one() -> None:
    limiter = RateLimiter(rate_per_s=0.5, burst=2)
    assert limiter.peek("a", now=0.0) == 0.0 and "a" not in limiter._buckets
    limiter.acquire("a", now=0.0)
    limiter.acquire("a", now=0.0)
    assert limiter.peek("a", now=0.0) == pytest.approx(2.0)
    assert limiter.peek("a", now=1.0) == pytest.approx(1.0)
    assert limiter.peek("a", now=2.0) == 0.0  # refilled: the next guess is answered again
