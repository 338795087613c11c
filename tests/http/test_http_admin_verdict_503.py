"""The admin page's verdict buttons when the API answers 503: the verdict route's own 503 (marked
`imgdup-verdict: stored`: saved, the clusterer not told yet) reads as saved and to be pressed again;
any other 503 (the database unreachable) as not saved. admin.js runs in Node's vm with the page's
DOM and session helpers stubbed: no browser, no server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ADMIN_JS = Path(__file__).resolve().parents[2] / "imgdup" / "http" / "static" / "admin.js"
NODE = shutil.which("node")

HARNESS = """
const vm = require("vm");
const fs = require("fs");
const [file, status, headers] = [process.argv[1], Number(process.argv[2]), JSON.parse(process.argv[3])];
const ctx = { document: { addEventListener() {} }, localStorage: { getItem: () => "mia", setItem() {} },
              console, setTimeout, clearTimeout, Response };
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(file, "utf8"), ctx);
const seen = { toasts: [], reloaded: false };
Object.assign(ctx, {
  $: () => ({ value: "mia", focus() {} }),
  authHeaders: (h) => h,
  showLogin: () => seen.toasts.push(["login", true]),
  loadClusters: async () => { seen.reloaded = true; },
  loadStats: () => {},
  toast: (message, isError) => seen.toasts.push([message, Boolean(isError)]),
  fetch: async () => new Response(JSON.stringify({ detail: "some text" }), { status, headers }),
});
const button = { disabled: false };
ctx.sendVerdict("p1", "confirmed", [button]).then(() => {
  console.log(JSON.stringify({ ...seen, disabled: button.disabled }));
});
"""


def _press(status: int, headers: dict[str, str]) -> dict[str, Any]:
    assert NODE is not None
    out = subprocess.run(
        [NODE, "-e", HARNESS, str(ADMIN_JS), str(status), json.dumps(headers)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


pytestmark = pytest.mark.skipif(NODE is None, reason="needs node")


def test_a_stored_but_not_applied_verdict_says_so_and_the_button_works_again() -> None:
    seen = _press(503, {"content-type": "application/json", "imgdup-verdict": "stored"})
    [(message, is_error)] = seen["toasts"]
    assert is_error
    assert "saved" in message and "again" in message, message
    assert "Could not save" not in message
    assert seen["disabled"] is False  # press it again
    assert seen["reloaded"] is False  # a reload would disable the button of the stored verdict


def test_any_other_503_is_not_saved() -> None:
    seen = _press(503, {"content-type": "application/json"})
    [(message, is_error)] = seen["toasts"]
    assert is_error and message.startswith("Could not save the verdict"), message
    assert seen["disabled"] is False


def test_a_saved_verdict_reloads() -> None:
    seen = _press(200, {"content-type": "application/json"})
    assert seen["toasts"] == [["Confirmed as a duplicate.", False]] and seen["reloaded"] is True
