"""The source tree in; whether its imports point down the layers, and whether every module says what it
consumes and produces, out (docs/architecture.md draws the same layers)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("imgdup_core", "schemas", "imgdup", "streams", "agents")

# Lowest first. A module may import its own package (at any depth) and anything in a lower layer;
# never a higher layer, nor another package of its own layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("imgdup_core",),
    ("schemas",),
    ("imgdup.settings", "imgdup.ids", "imgdup.metrics", "imgdup"),
    ("imgdup.analysis", "imgdup.vectors", "imgdup.blobs", "imgdup.kafka", "imgdup.verifiers"),
    ("imgdup.store",),
    ("imgdup.steps",),
    ("imgdup.http", "streams"),
    ("agents",),
    ("imgdup.ops",),
    ("imgdup.cli",),
    ("imgdup.__main__",),
)
# Longer than the ~400-line guide because each is one algorithm or one flat table of cases.
LONG_MODULES = {
    "imgdup.vectors.numpy_index",  # one index: sketches, shards, the log, its replay
    "imgdup.ops.demo.feed",  # the demo feed's photos and edits, listed
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _component(module: str) -> tuple[int, str]:
    """(layer, component) of a module: the longest layer entry it falls under."""
    best: tuple[int, str] | None = None
    for level, entries in enumerate(LAYERS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and (
                best is None or len(entry) > len(best[1])
            ):
                best = (level, entry)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return best


def _imports(path: Path) -> set[str]:
    """Every project module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import module` imports the module when it is one.
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in MODULES else node.module)
    return {name for name in names if name.split(".")[0] in PACKAGES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module: str) -> None:
    level, component = _component(module)
    for imported in sorted(_imports(MODULES[module])):
        their_level, theirs = _component(imported)
        assert their_level < level or theirs == component, (
            f"{module} (layer {level}, {component}) imports {imported} (layer {their_level}, {theirs})"
        )


def test_nothing_imports_the_command_line() -> None:
    importers = [
        m for m, path in MODULES.items() if "imgdup.cli" in _imports(path) and m != "imgdup.__main__"
    ]
    assert importers == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_opens_with_what_it_is(module: str) -> None:
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    if path.name == "__init__.py" and not tree.body:
        return  # an empty package marker
    docstring = ast.get_docstring(tree)
    assert docstring, f"{module}: no module docstring"


@pytest.mark.parametrize("module", sorted(set(MODULES) - LONG_MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 420, f"{module}: {lines} lines; split it by job (or say why it is one algorithm)"


def test_the_layers_name_only_existing_code() -> None:
    for entries in LAYERS:
        for entry in entries:
            assert any(m == entry or m.startswith(entry + ".") for m in MODULES), entry
    assert set(MODULES) >= LONG_MODULES


def test_the_architecture_page_names_every_module_and_only_existing_folders() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        m for m, path in MODULES.items() if path.name != "__init__.py" and f"`{path.name}`" not in page
    ]
    assert missing == [], "add these modules to docs/architecture.md"
    for folder in re.findall(r"^### `([\w/]+/)`", page, flags=re.M):
        assert (ROOT / folder).is_dir(), folder
