"""A folder in; a throwaway PKI out: a CA, a broker certificate for localhost/127.0.0.1 and a client
certificate signed by it, and a second CA that signed neither (made with the openssl command)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pki:
    ca: Path
    broker_cert: Path
    broker_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # trusts nothing the broker presents


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def _self_signed(folder: Path, name: str, subject: str) -> None:
    _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
             "-keyout", f"{name}.key", "-out", f"{name}.pem")  # fmt: skip


def _signed(folder: Path, name: str, subject: str, extensions: str | None = None) -> None:
    _openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
             "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
    extra: list[str] = []
    if extensions:
        (folder / f"{name}.ext").write_text(extensions + "\n")
        extra = ["-extfile", f"{name}.ext"]
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra)  # fmt: skip


def make_pki(folder: Path) -> Pki:
    """Skips the calling test when the openssl command is missing (scripts/setup-system.sh installs it)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command (Debian package openssl) to make test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    _self_signed(folder, "ca", "/CN=imgdup test CA")
    _signed(folder, "broker", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    _signed(folder, "client", "/CN=imgdup")
    _self_signed(folder, "other-ca", "/CN=some other CA")
    return Pki(
        ca=folder / "ca.pem",
        broker_cert=folder / "broker.pem",
        broker_key=folder / "broker.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
    )
