"""`ava.proposals.import_file` must name a file in proposals/, the folder dvc.yaml lists as a dependency of the
proposals_ava stage: a file elsewhere could change without DVC re-running the stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slowfast.config import ConfigError
from stages.proposals_ava import IMPORT_DIR, check_import_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_folder_is_a_dependency_of_the_proposals_stage():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["proposals_ava"]
    assert IMPORT_DIR in stage["deps"] and (ROOT / IMPORT_DIR).is_dir()


@pytest.mark.parametrize("path", ["elsewhere/p.csv", "/abs/proposals/p.csv", "proposals/../p.csv", "p.csv"])
def test_an_import_file_outside_the_folder_fails_naming_the_key(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    for name in ("elsewhere/p.csv", "p.csv", "proposals/p.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    with pytest.raises(ConfigError) as err:
        check_import_file(path)
    assert err.value.key == "ava.proposals.import_file" and "proposals/" in str(err.value)


def test_an_import_file_in_the_folder_is_accepted_and_a_missing_one_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proposals").mkdir()
    (tmp_path / "proposals" / "val.csv").write_text("")
    assert check_import_file("proposals/val.csv") == Path("proposals/val.csv")
    with pytest.raises(ConfigError, match="proposals/gone.csv does not exist"):
        check_import_file("proposals/gone.csv")
