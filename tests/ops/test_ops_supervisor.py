"""imgdup.ops.supervisor.Stack: worker groups -> named worker processes (no process is started here)."""

from __future__ import annotations

from pathlib import Path

from imgdup.ops.supervisor import Stack
from imgdup.settings import Settings


def _stack(groups: list[list[str]], tmp_path: Path) -> Stack:
    return Stack(Settings(data_dir=tmp_path), say=lambda _: None, worker_groups=groups)


def test_one_group_is_one_worker(tmp_path: Path) -> None:
    assert _stack([["images", "verifier", "clusterer"]], tmp_path).workers() == {
        "worker": ["images", "verifier", "clusterer"]
    }


def test_a_group_listed_twice_is_two_processes_of_those_roles(tmp_path: Path) -> None:
    workers = _stack([["images", "clusterer"], ["verifier"], ["verifier"]], tmp_path).workers()
    assert workers == {
        "worker-images-clusterer": ["images", "clusterer"],
        "worker-verifier": ["verifier"],
        "worker-verifier-2": ["verifier"],
    }
