"""Atomic writes that overlap: two runs preparing one cache must not trip over each other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from models.atomic import atomic_path, write_text_atomic


def test_overlapping_writers_of_one_file_both_succeed(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    # Two writers open at once (as two trainings preparing the same --cache): with one shared
    # ".tmp" name the first replace took the second writer's file away (FileNotFoundError).
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        first.write_text("one", encoding="utf-8")
        second.write_text("two", encoding="utf-8")
    assert target.read_text(encoding="utf-8") in {"one", "two"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_many_threads_writing_one_file_leave_one_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    texts = [f"writer {i} " * 2000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: [write_text_atomic(target, t) for _ in range(20)], texts))
    assert target.read_text(encoding="utf-8") in texts
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.pt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
