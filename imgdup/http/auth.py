"""Credentials, roles and request headers -> who the caller is (a `Principal`) and what it may reach.

Three ways in, checked in this order:
- `Authorization: Bearer <IMGDUP_API_TOKEN>`: full access (the contract; every route accepts it).
- `Authorization: Bearer <name>:<secret>`: a named credential from `IMGDUP_API_CREDENTIALS`, whose
  entries `name:role[+role]:hash` keep only a hash of the secret (`sha256:<hex>` for generated
  random tokens, `scrypt:<n>:<r>:<p>:<salt hex>:<key hex>` for secrets people choose).
- From a peer in `IMGDUP_TRUSTED_PROXIES` only: an authenticating proxy's identity headers
  (`X-Imgdup-Role`, `X-Auth-Request-User`), and `X-Forwarded-For` for the client's address.
With none of the three configured the API is open (development only). No FastAPI here: `deps.py`
turns these answers into 401, 403 and 429."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ROLE_HEADER = "x-imgdup-role"
USER_HEADER = "x-auth-request-user"
FULL_ACCESS = "admin"  # the role of IMGDUP_API_TOKEN; no named credential has it


class Access(StrEnum):
    """What a route exposes; each route declares exactly one (deps.Allow)."""

    PUBLIC = "public"  # /livez and /healthz only: probes carry no credentials
    ANY = "any"  # any authenticated caller: the API's description, "who am I"
    INGEST = "ingest"  # publishing ad events (the portal)
    READ = "read"  # duplicates, clusters, stats with seller ids, thumbnails, the admin page
    MODERATE = "moderate"  # moderators' verdicts
    METRICS = "metrics"  # the Prometheus scrape


ROLES: dict[str, frozenset[Access]] = {
    "ingest": frozenset({Access.ANY, Access.INGEST}),
    "viewer": frozenset({Access.ANY, Access.READ}),
    "moderator": frozenset({Access.ANY, Access.READ, Access.MODERATE}),
    "metrics": frozenset({Access.ANY, Access.METRICS}),
}
EVERYTHING = frozenset(Access)
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `key` names it for rate limits: the same caller, the same bucket,
    however it spells its headers."""

    name: str
    roles: tuple[str, ...]
    via: str  # "token", "credential", "proxy" or "open"

    @property
    def access(self) -> frozenset[Access]:
        if FULL_ACCESS in self.roles:
            return EVERYTHING
        return frozenset().union(*(ROLES[role] for role in self.roles))

    def may(self, access: Access) -> bool:
        return access is Access.PUBLIC or access in self.access

    @property
    def key(self) -> str:
        return f"{self.via}:{'+'.join(self.roles)}:{self.name}"


OPEN = Principal(name="anonymous", roles=(FULL_ACCESS,), via="open")


# ------------------------------------------------------------------------------------ secrets


class CredentialError(ValueError):
    """A malformed credential entry; the message names the entry, never its hash or secret."""


@dataclass(frozen=True)
class Credential:
    name: str
    roles: tuple[str, ...]
    scheme: str  # "sha256" or "scrypt"
    params: tuple[int, int, int]  # scrypt n, r, p (unused for sha256)
    salt: bytes
    digest: bytes

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_derive(secret, self.scheme, self.params, self.salt), self.digest)


def _derive(secret: str, scheme: str, params: tuple[int, int, int], salt: bytes) -> bytes:
    if scheme == "sha256":
        return hashlib.sha256(secret.encode()).digest()
    n, r, p = params
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def hash_secret(secret: str, scheme: str = "sha256", *, n: int = 2**15, r: int = 8, p: int = 1) -> str:
    """The stored form of a secret: `sha256:<hex>` or `scrypt:<n>:<r>:<p>:<salt hex>:<key hex>`."""
    if scheme == "sha256":
        return "sha256:" + _derive(secret, "sha256", (0, 0, 0), b"").hex()
    if scheme == "scrypt":
        salt = secrets.token_bytes(16)
        return f"scrypt:{n}:{r}:{p}:{salt.hex()}:{_derive(secret, 'scrypt', (n, r, p), salt).hex()}"
    raise ValueError(f"unknown hash scheme {scheme!r}: sha256 or scrypt")


def new_credential(name: str, roles: str, scheme: str = "sha256") -> tuple[str, str]:
    """A fresh random secret for `name` -> (the bearer token to hand out, the entry to configure)."""
    if not _NAME.match(name):
        raise CredentialError(f"the name must be 1-64 of A-Z a-z 0-9 _ . @ -, got {name!r}")
    token = f"{name}:{secrets.token_urlsafe(32)}"
    entry = f"{name}:{roles}:{hash_secret(token.split(':', 1)[1], scheme)}"
    parse_credentials(entry)  # the same checks the API applies when it starts
    return token, entry


def _parse_entry(number: int, entry: str) -> Credential:
    name, _, rest = entry.partition(":")
    roles_text, _, stored = rest.partition(":")
    where = f"credential entry {number} ({name or 'no name'})"
    if not _NAME.match(name):
        raise CredentialError(f"{where}: the name must be 1-64 of A-Z a-z 0-9 _ . @ -")
    roles = tuple(role for role in roles_text.split("+") if role)
    unknown = [role for role in roles if role not in ROLES]
    if not roles or unknown:
        raise CredentialError(
            f"{where}: roles must be among {', '.join(ROLES)} (joined by +), got {roles_text!r}"
        )
    scheme, _, value = stored.partition(":")
    try:
        if scheme == "sha256":
            digest = bytes.fromhex(value)
            if len(digest) != 32:
                raise ValueError
            return Credential(name, roles, "sha256", (0, 0, 0), b"", digest)
        if scheme == "scrypt":
            n, r, p, salt, key = value.split(":")
            params = (int(n), int(r), int(p))
            if params[0] < 2**14 or params[0] & (params[0] - 1) or params[1] < 1 or params[2] < 1:
                raise ValueError
            return Credential(name, roles, "scrypt", params, bytes.fromhex(salt), bytes.fromhex(key))
    except ValueError:
        pass
    raise CredentialError(
        f"{where}: the hash must be sha256:<64 hex> or scrypt:<n >= 16384>:<r>:<p>:<salt hex>:<key hex>"
    )


def parse_credentials(text: str) -> dict[str, Credential]:
    """`name:roles:hash` entries, one per line or separated by commas; `#` starts a comment."""
    found: dict[str, Credential] = {}
    entries = [
        entry.strip()
        for line in text.splitlines()
        for entry in line.split("#", 1)[0].split(",")
        if entry.strip()
    ]
    for number, entry in enumerate(entries, start=1):
        credential = _parse_entry(number, entry)
        if credential.name in found:
            raise CredentialError(f"credential entry {number}: the name {credential.name!r} is used twice")
        found[credential.name] = credential
    return found


def parse_networks(cidrs: Iterable[str]) -> tuple[IpNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)
    except ValueError as exc:
        raise ValueError(f"IMGDUP_TRUSTED_PROXIES: {exc}") from exc


# ------------------------------------------------------------------------------------ requests


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str | None, networks: Sequence[IpNetwork]) -> bool:
    ip = _address(address) if address else None
    return ip is not None and any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IpNetwork]) -> str:
    """The caller's address: the TCP peer, unless the peer is a trusted proxy; then the nearest
    X-Forwarded-For hop that is not a trusted proxy (hops further left are the client's own
    words). A hop that is not an address stops the walk at the proxy that reported it."""
    if peer is None:
        return "?"
    if not _trusted(peer, trusted):
        return peer
    current = peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            return current
        current = str(ip)
        if not _trusted(current, trusted):
            return current
    return current


class Outcome(StrEnum):
    NONE = "none"  # no credentials presented: 401, not a guess
    WRONG = "wrong"  # credentials presented and refused: 401, counted against the address


class Authenticator:
    """Settings' secrets, parsed once when the app is built; malformed entries refuse the start."""

    def __init__(
        self,
        api_token: str | None,
        credentials_text: str | None,
        trusted_proxies: Sequence[str],
        *,
        open_access: bool = False,
    ) -> None:
        # Open only when the settings say nothing at all was configured: a credentials file that
        # holds only comments locks everyone out rather than letting everyone in.
        self.open = open_access
        self.api_token = api_token or None
        self.credentials = parse_credentials(credentials_text or "")
        self.trusted_proxies = parse_networks(trusted_proxies)
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()
        self._lock = threading.Lock()

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        return client_address(peer, forwarded_for, self.trusted_proxies)

    def authenticate(
        self, authorization: str | None, peer: str | None, identity: dict[str, str]
    ) -> Principal | Outcome:
        """The caller, or why not. `identity` holds the proxy headers, lower-cased names."""
        if self.open:
            return OPEN
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Outcome.WRONG
            return self._bearer(token.strip())
        if identity.get(ROLE_HEADER) is not None and _trusted(peer, self.trusted_proxies):
            return self._proxied(identity)
        return Outcome.NONE

    def _bearer(self, token: str) -> Principal | Outcome:
        # Digests of equal length: the comparison does not even tell the token's length.
        if self.api_token is not None and hmac.compare_digest(
            hashlib.sha256(token.encode()).digest(), hashlib.sha256(self.api_token.encode()).digest()
        ):
            return Principal(name="api-token", roles=(FULL_ACCESS,), via="token")
        name, sep, secret = token.partition(":")
        credential = self.credentials.get(name) if sep else None
        if credential is None:
            # The same work as a wrong sha256 secret: a miss does not tell which names exist.
            hmac.compare_digest(hashlib.sha256(token.encode()).digest(), b"\0" * 32)
            return Outcome.WRONG
        if credential.scheme == "scrypt":
            # scrypt is slow on purpose; a verified token is remembered (by its sha256) so that
            # a moderator's page does not pay it on every thumbnail.
            seen = hashlib.sha256(token.encode()).digest()
            with self._lock:
                known = self._verified.get(seen)
            if known is not None:
                return known
        if not credential.matches(secret):
            return Outcome.WRONG
        principal = Principal(name=credential.name, roles=credential.roles, via="credential")
        if credential.scheme == "scrypt":
            with self._lock:
                self._verified[seen] = principal
                while len(self._verified) > 1024:
                    self._verified.popitem(last=False)
        return principal

    def _proxied(self, identity: dict[str, str]) -> Principal | Outcome:
        roles = tuple(role.strip() for role in identity.get(ROLE_HEADER, "").split("+") if role.strip())
        if not roles or any(role not in ROLES for role in roles):
            return Outcome.WRONG
        user = identity.get(USER_HEADER, "").strip()[:200] or "proxy-user"
        return Principal(name=user, roles=roles, via="proxy")
