"""The admin page's verdict buttons and the pair's row, whatever the API answers: a saved verdict marks
its row from the POST's answer (never waiting for the reload, which races the clusterer); the verdict
route's own 503 (marked `imgdup-verdict: stored`: saved, the clusterer not told yet) reads as saved
and to be pressed again; any other 503 (the database unreachable) as not saved, the row as before.
admin.js runs in Node's vm with the page's DOM and session helpers stubbed: no browser, no server."""

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
// The pair's row (rejected before, confirmed now): its class and its verdict cell, built by the
// page's own verdictCell over a stub el.
const row = { className: "rejected", querySelector: () => row.cell };
const node = (props) => ({ ...props, replaceWith(next) { row.cell = next; } });
row.cell = node({ text: "original cell", children: [] });
const text = (n) => typeof n === "string" ? n : [n.text || "", ...n.children.map(text)].join(" ").trim();
const seen = { toasts: [], reloaded: false, rowAtReload: null };
const stored = { pair_id: "p1", verdict: "confirmed", moderator: "mia", note: null,
                 decided_at: "2026-12-05T11:00:00Z", changed: true };
Object.assign(ctx, {
  $: () => ({ value: "mia", focus() {} }),
  el: (tag, attrs, ...children) => node({
    tag, text: (attrs || {}).text, children: children.flat().filter(Boolean),
    append(c) { this.children.push(c); },
  }),
  authHeaders: (h) => h,
  showLogin: () => seen.toasts.push(["login", true]),
  // A reload that never answers: the row must not wait for it.
  loadClusters: () => {
    seen.reloaded = true;
    seen.rowAtReload = row.className;
    return new Promise(() => {});
  },
  loadStats: () => {},
  toast: (message, isError) => seen.toasts.push([message, Boolean(isError)]),
  fetch: async () => {
    seen.rowWhileSaving = [row.className, text(row.cell)];
    const body = status === 200 ? stored : { detail: "some text" };
    return new Response(JSON.stringify(body), { status, headers });
  },
});
const buttons = [
  { disabled: false, dataset: { verdict: "confirmed" } },
  { disabled: false, dataset: { verdict: "not_duplicate" } },
];
ctx.sendVerdict("p1", "confirmed", buttons, row).then(() => {
  console.log(JSON.stringify({ ...seen, disabled: buttons[0].disabled, other: buttons[1].disabled,
                               row: [row.className, text(row.cell)] }));
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
    # The row says so too, not the state it had before the press.
    assert seen["row"][0] == "confirmed" and "not applied" in seen["row"][1], seen["row"]


def test_any_other_503_is_not_saved() -> None:
    seen = _press(503, {"content-type": "application/json"})
    [(message, is_error)] = seen["toasts"]
    assert is_error and message.startswith("Could not save the verdict"), message
    assert seen["disabled"] is False
    # Nothing saved: the row reads as before the press again.
    assert seen["row"] == ["rejected", "original cell"]


def test_the_row_says_saving_while_the_request_is_out() -> None:
    seen = _press(200, {"content-type": "application/json"})
    assert seen["rowWhileSaving"] == ["rejected", "saving…"]


def test_a_saved_verdict_marks_its_row_from_the_answer_then_reloads() -> None:
    """The row is marked from the POST's answer before the reload starts, and the press is done
    without waiting for the reload (that never answers here): it races the clusterer."""
    seen = _press(200, {"content-type": "application/json"})
    assert seen["toasts"] == [["Confirmed as a duplicate.", False]] and seen["reloaded"] is True
    assert seen["rowAtReload"] == "confirmed"
    (state, cell) = seen["row"]
    assert state == "confirmed" and "confirmed" in cell and "mia" in cell and "2026-12-05 11:00" in cell, cell
    assert seen["disabled"] is True and seen["other"] is False  # as the reloaded row would have them
