"""Figure 3 across pipeline executions: an evaluate_ava run finds the newest finished run of the other architecture
on the same evaluation data in a real MLflow store, and the figure's data are the two runs' per-class APs."""

from __future__ import annotations

import math
import time

import mlflow
import numpy as np
import pandas as pd
import pytest

from slowfast.metrics.ava import evaluate_ava
from slowfast.tracking.compare import (
    TAG_ARCH,
    TAG_EVAL_DATA,
    data_fingerprint,
    find_counterpart,
    result_metrics,
    write_figure3_if_paired,
)
from slowfast.tracking.runs import PIPELINE_ID_ENV, stage_run

LABEL_MAP = {1: "bend/bow (at the waist)", 3: "crouch/kneel", 4: "dance", 7: "fly"}  # nobody flies: AP is NaN
COLUMNS = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]


def _groundtruth() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for t in range(902, 922):
        for pid in range(2):
            x, y = rng.uniform(0, 0.5, 2)
            for action in rng.choice([1, 3, 4], int(rng.integers(1, 3)), replace=False):
                rows.append(["vid", t, x, y, x + 0.4, y + 0.4, int(action), pid])
    return pd.DataFrame(rows, columns=[*COLUMNS, "person_id"])


def _result(groundtruth: pd.DataFrame, seed: int, noise: float):
    """The AVA result of detections that are the ground truth's boxes and classes with scores of varying quality."""
    rng = np.random.default_rng(seed)
    det = groundtruth.drop(columns="person_id")
    wrong = det.assign(action_id=rng.choice([1, 3, 4], len(det)))
    det = pd.concat([det.assign(score=rng.random(len(det))), wrong.assign(score=rng.random(len(det)) * noise)])
    return evaluate_ava(groundtruth, det.reset_index(drop=True), LABEL_MAP)


def _record(arch: str, result, eval_data: str, tmp_path, *, fail: bool = False) -> str:
    """An evaluate_ava run as the stage records it (tags + metrics); a failing one ends FAILED."""
    try:
        with stage_run("evaluate_ava", params={}, repo_root=tmp_path, system_metrics=False,
                       tags={TAG_ARCH: arch, TAG_EVAL_DATA: eval_data}) as run:
            run.log_metrics(result_metrics(result))
            if fail:
                raise RuntimeError("stage failed after logging")
    except RuntimeError:
        pass
    time.sleep(0.01)  # distinct start times, so "newest" is well defined
    return run.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating one takes seconds); tests keep apart by their evaluation data."""
    root = tmp_path_factory.mktemp("figure3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv(PIPELINE_ID_ENV, "pipe-figure3")
        yield root


def test_fingerprint_depends_on_contents_only():
    gt = _groundtruth()
    shuffled_index = gt.set_axis(np.arange(len(gt))[::-1] + 100)
    assert data_fingerprint(gt, label_map=LABEL_MAP) == data_fingerprint(shuffled_index, label_map=LABEL_MAP)
    moved = gt.copy()
    moved.loc[3, "x1"] += 0.01
    assert data_fingerprint(moved, label_map=LABEL_MAP) != data_fingerprint(gt, label_map=LABEL_MAP)
    assert data_fingerprint(gt, label_map={**LABEL_MAP, 8: "jump"}) != data_fingerprint(gt, label_map=LABEL_MAP)


def test_one_run_alone_has_no_pair_and_writes_no_figure(store):
    gt = _groundtruth()
    data = data_fingerprint(gt, label_map=LABEL_MAP, test="alone")
    slowfast = _result(gt, seed=1, noise=0.5)
    (store / "out").mkdir()
    (store / "out" / "figure3.png").write_bytes(b"stale")  # an earlier pair's figure must not survive
    with stage_run("evaluate_ava", params={}, repo_root=store, system_metrics=False,
                   tags={TAG_ARCH: "slowfast", TAG_EVAL_DATA: data}) as run:
        run.log_metrics(result_metrics(slowfast))
        assert write_figure3_if_paired(slowfast, arch="slowfast", eval_data=data, label_map=LABEL_MAP,
                                       out_dir=store / "out", run=run) is None
    assert not (store / "out" / "figure3.png").exists() and not (store / "out" / "figure3.csv").exists()
    # A Fast-only model has no counterpart, even with a SlowFast run on the same data.
    assert find_counterpart(slowfast, arch="fast", eval_data=data) is None


def test_figure3_pairs_the_newest_finished_run_of_the_other_arch_on_the_same_data(store):
    gt = _groundtruth()
    data = data_fingerprint(gt, label_map=LABEL_MAP)
    older_slow, slow, failed_slow = (_result(gt, seed=s, noise=n) for s, n in ((2, 1.0), (3, 0.9), (4, 0.1)))
    slowfast = _result(gt, seed=5, noise=0.3)
    assert len({r.map for r in (older_slow, slow, failed_slow, slowfast)}) == 4
    _record("slow", older_slow, data, store)
    slow_id = _record("slow", slow, data, store)
    _record("slow", failed_slow, data, store, fail=True)  # newer, but not finished
    _record("slow", failed_slow, data_fingerprint(gt.iloc[1:], label_map=LABEL_MAP), store)  # other data
    _record("slowfast", slowfast, data, store)  # same arch: never its own counterpart

    with stage_run("evaluate_ava", params={}, repo_root=store, system_metrics=False,
                   tags={TAG_ARCH: "slowfast", TAG_EVAL_DATA: data}) as run:
        run.log_metrics(result_metrics(slowfast))
        paths = write_figure3_if_paired(slowfast, arch="slowfast", eval_data=data, label_map=LABEL_MAP,
                                        out_dir=store / "out", run=run)
    assert paths is not None
    png, csv = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(csv)
    assert list(table.columns) == ["class_id", "class", "groundtruth", "ap_slow", "ap_slowfast"]
    assert sorted(table["class_id"]) == sorted(LABEL_MAP)
    assert list(table["groundtruth"]) == sorted(table["groundtruth"], reverse=True)  # the paper's order
    for row in table.itertuples():
        for column, expected in (("ap_slow", slow), ("ap_slowfast", slowfast)):
            value, want = getattr(row, column), expected.per_class_ap[row.class_id]
            assert (math.isnan(value) and math.isnan(want)) or value == want, (row.class_id, column)
    assert math.isnan(table.set_index("class_id").loc[7, "ap_slow"])  # no ground truth: no AP, not 0
    client = mlflow.MlflowClient()
    assert {"figure3.png", "figure3.csv"} <= {f.path for f in client.list_artifacts(run.run_id)}

    # The same pairing seen from the Slow-only side: the newest finished SlowFast run.
    found = find_counterpart(slow, arch="slow", eval_data=data)
    assert found is not None and found[1].per_class_ap.keys() == slowfast.per_class_ap.keys()
    assert found[1].map == slowfast.map and found[0] != slow_id
