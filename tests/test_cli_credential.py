"""`imgdup credential` -> a token to hand out and the entry to configure: the API admits the one with
the other, and the entry holds only a hash."""

from __future__ import annotations

import io

import pytest

from imgdup import cli
from imgdup.http.auth import Authenticator, Principal


def _printed(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return {words[0]: words[1].strip() for words in lines if words[0] in ("token", "entry")}


def test_a_generated_credential_is_admitted_with_its_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["credential", "portal", "ingest+viewer"]) == 0
    printed = _printed(capsys)
    secret = printed["token"].split(":", 1)[1]
    assert secret not in printed["entry"] and printed["entry"].startswith("portal:ingest+viewer:sha256:")
    caller = Authenticator(None, printed["entry"], ()).authenticate(f"Bearer {printed['token']}", None, {})
    assert caller == Principal("portal", ("ingest", "viewer"), "credential")


def test_a_chosen_secret_is_hashed_with_scrypt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    assert cli.main(["credential", "ana", "moderator", "--secret-stdin"]) == 0
    printed = _printed(capsys)
    assert "token" not in printed and printed["entry"].startswith("ana:moderator:scrypt:")
    assert "correct horse" not in printed["entry"]
    authenticator = Authenticator(None, printed["entry"], ())
    caller = authenticator.authenticate("Bearer ana:correct horse battery staple", None, {})
    assert isinstance(caller, Principal) and caller.roles == ("moderator",)


@pytest.mark.parametrize("argv", [["bad:name", "viewer"], ["portal", "admin"], ["portal", "root"]])
def test_bad_names_and_roles_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["credential", *argv]) == 2
    assert "error:" in capsys.readouterr().err
