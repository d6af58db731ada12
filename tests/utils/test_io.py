"""Atomic writes never leave a half-written file under the final name."""

from __future__ import annotations

import json

import pytest

from slowfast.utils.io import atomic_path, write_json_atomic


def test_failed_write_leaves_previous_content_and_no_temp_files(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_successful_write_replaces_content_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    write_json_atomic(target, {"v": 1})
    write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
