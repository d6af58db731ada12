"""The real pipeline and its DVC workflows, run as a user runs them, on reduced parameters in a copy of the repo.

One `dvc repro` (committed, as a user commits `make run`'s dvc.lock and reports) serves every test: its outputs and
metrics (recomputed from the files the stages wrote), the MLflow runs; a `git clone` at another path whose
`dvc repro` (killed mid-`pretrain` and resumed) gives the same dvc.lock and files; the imported-proposals branch;
`dvc exp run -S model.preset=slow_tiny` with `dvc exp show`, `dvc metrics diff`, `dvc plots diff`; going back to the
baseline from DVC's run cache; and an invalid parameter failing before any work.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import average_precision_score

from slowfast.data.sources import AvaSource
from slowfast.engine.checkpointing import list_states
from slowfast.engine.evaluate import read_scores
from slowfast.tracking.compare import TAG_ARCH, TAG_EVAL_DATA
from slowfast.tracking.runs import PIPELINE_ID_ENV, TAG_ROLE
from tests.metrics.ava_reference import reference_ava_map

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

REDUCED = {
    "synthetic": {
        # 6 classes, so that top-5 can miss (k < classes)
        "kinetics": {"num_classes": 6, "train_per_class": 2, "val_per_class": 1, "duration_sec": 2.4},
        "charades": {"num_classes": 3, "train_videos": 3, "test_videos": 2, "duration_sec": 4.0},
        "ava": {"train_videos": 1, "val_videos": 1, "duration_sec": 8},
    },
    "decode": {"workers": 1, "frames": {"short_side": 48}},
    "pretrain": {"train": {"epochs": 2, "batch_size": 4, "checkpoint_every": 1, "warmup": 0}},
    "evaluate": {"test_clips": 2},
    "charades": {"finetune": {"train": {"epochs": 2, "batch_size": 3, "lr_steps": [1]}},
                 "evaluate": {"test_clips": 2}},
    "ava": {"proposals": {"pretrain_scenes": 32, "pretrain": {"epochs": 1}, "finetune": {"epochs": 1}},
            "finetune": {"train": {"epochs": 2, "batch_size": 2, "lr_steps": [1], "warmup": 0}}},
}
DATA_STAGES = ("synthesize", "download", "decode_kinetics", "decode_charades", "decode_ava")
TRAINING_STAGES = ("pretrain", "finetune_charades", "finetune_ava", "proposals_ava")
METRICS = (("reports/evaluate.json", "top1"), ("reports/evaluate_charades.json", "map"),
           ("reports/evaluate_ava.json", "map"))


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        src = ROOT / name
        if (src.is_file() and not name.startswith(("tests/", "benchmarks/", "reports/"))
                and name != "dvc.lock"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (PIPELINE_ID_ENV, "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
    return env


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


def _dvc(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _json(result: subprocess.CompletedProcess):
    _ok(result)
    return json.loads(result.stdout)


def _lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def _stage_runs(repo: Path, stage: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("slowfast").experiment_id],
                              filter_string=f"tags.`slowfast.stage` = '{stage}'")


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory):
    """The user's repository after `make run` and `git commit` of dvc.lock and the reports."""
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, REDUCED), sort_keys=False))
    env = _env()
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "copy")
    _ok(_dvc(repo, env, "repro"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline run")
    return repo, env


def test_dvc_repro_runs_every_stage_tracks_them_and_a_second_repro_is_a_no_op(pipeline_repo):
    repo, env = pipeline_repo
    committed = _git(repo, "ls-files").split()
    assert {"dvc.lock", "reports/evaluate.json", "reports/pretrain_curve.csv", "reports/evaluate_ava.json",
            "reports/finetune_charades_curve.csv"} <= set(committed)  # metrics and plots live in git
    assert not any(name.startswith(("data/", "models/", "runs/")) for name in committed)

    assert json.loads((repo / "reports/download.json").read_text())["failures"] == 0
    decode = json.loads((repo / "reports/decode_kinetics.json").read_text())
    assert decode["decoded"] == decode["videos"] == 6 * (2 + 1) and decode["failures"] == 0
    pretrain = json.loads((repo / "reports/pretrain.json").read_text())
    assert pretrain["epochs"] == 2 and pretrain["steps"] == 2 * 3  # 12 clips / batch 4, two epochs
    assert "clips_per_s" not in pretrain  # timing stays in MLflow: DVC outputs depend on the training only
    curve = pd.read_csv(repo / "reports/pretrain_curve.csv")
    assert list(curve["epoch"]) == [1, 2] and "clips_per_s" not in curve
    for name, column in (("finetune_charades", "val_map"), ("finetune_ava", "loss")):
        assert list(pd.read_csv(repo / f"reports/{name}_curve.csv")["epoch"]) == [1, 2] and column

    # Kinetics: top-1 and top-5 (of 6 classes) recomputed from the written scores and the raw annotations.
    evaluate = json.loads((repo / "reports/evaluate.json").read_text())
    assert evaluate["videos"] == 6 and evaluate["views_per_video"] == 2 * 3
    classes = json.loads((repo / "models/pretrain/classes.json").read_text())
    with open(repo / "data/raw/kinetics/annotations/val.csv", newline="") as fh:
        truth = {f"{r['youtube_id']}_{int(r['time_start']):06d}_{int(r['time_end']):06d}": classes.index(r["label"])
                 for r in csv.DictReader(fh)}
    scores = read_scores(repo / "reports/evaluate/scores.parquet")
    assert sorted(scores.video_ids) == sorted(truth) and scores.scores.shape == (6, 6)
    labels = np.array([truth[v] for v in scores.video_ids])
    ranks = (scores.scores > scores.scores[np.arange(6), labels][:, None]).sum(axis=1)
    assert evaluate["top1"] == pytest.approx(float(np.mean(ranks < 1)))
    assert evaluate["top5"] == pytest.approx(float(np.mean(ranks < 5)))
    assert (repo / "reports/evaluate/confusion_matrix.png").stat().st_size > 0
    assert (repo / "models/pretrain/model.pt").is_file()

    # Charades: chance from the test labels; mAP from the written scores (scikit-learn's AP per class).
    charades = json.loads((repo / "reports/evaluate_charades.json").read_text())
    assert charades["videos"] == 2 and charades["views_per_video"] == 6
    class_ids = [line.split()[0] for line in (repo / "data/raw/charades/Charades_v1_classes.txt").read_text()
                 .splitlines() if line.strip()]
    with open(repo / "data/raw/charades/Charades_v1_test.csv", newline="") as fh:
        test = {r["id"]: {a.split()[0] for a in r["actions"].split(";") if a} for r in csv.DictReader(fh)}
    multi_hot = np.array([[c in test[v] for c in class_ids] for v in sorted(test)], dtype=float)
    prevalence = multi_hot.mean(axis=0)
    assert charades["chance_map"] == pytest.approx(float(prevalence[prevalence > 0].mean()))
    written = read_scores(repo / "reports/evaluate_charades/scores.parquet")
    order = np.argsort(written.video_ids)
    assert [written.video_ids[i] for i in order] == sorted(test)
    aps = [average_precision_score(multi_hot[:, k], written.scores[order, k])
           for k in range(len(class_ids)) if multi_hot[:, k].any()]
    assert charades["map"] == pytest.approx(float(np.mean(aps)))
    finetune = json.loads((repo / "reports/finetune_charades.json").read_text())
    assert finetune["epochs"] == 2 and "val_map" in finetune

    # AVA (the reduced detector may keep no proposal: the mAP is recomputed on imported proposals, test below).
    proposals = json.loads((repo / "reports/proposals_ava.json").read_text())
    assert proposals["keyframes"] > 0 and {"ap50", "recall", "precision"} <= set(proposals)
    ava = json.loads((repo / "reports/evaluate_ava.json").read_text())
    assert ava["keyframes"] <= proposals["keyframes"] and 0.0 <= ava["chance_map"] <= 1.0
    detections = (repo / "reports/evaluate_ava/detections.csv").read_text().splitlines()
    assert len(detections) == ava["detections"]
    # The published detections file, scored by the CLI as a user would, gives the stage's mAP.
    annotations = repo / "data/raw/ava/annotations"
    scored = subprocess.run(
        [sys.executable, "-m", "slowfast.cli", "eval-ava", "--json", "--groundtruth", annotations / "ava_val_v2.2.csv",
         "--detections", repo / "reports/evaluate_ava/detections.csv",
         "--labelmap", annotations / "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
         *(["--exclusions", ex] if (ex := annotations / "ava_val_excluded_timestamps_v2.2.csv").is_file() else [])],
        capture_output=True, text=True, env=env, cwd=repo, check=True,
    )
    assert json.loads(scored.stdout)["mAP"] == pytest.approx(ava["map"], abs=1e-9)

    shown = _json(_dvc(repo, env, "metrics", "show", "--json"))
    assert shown  # parsed; the values per file are checked against HEAD in the experiment test

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("slowfast").experiment_id])
    parents = [r for r in runs if r.data.tags.get(TAG_ROLE) == "pipeline"]
    children = [r for r in runs if r.data.tags.get(TAG_ROLE) == "stage"]
    assert len(parents) == 1
    assert sorted(r.info.run_name for r in children) == [
        "decode_ava", "decode_charades", "decode_kinetics", "download", "evaluate", "evaluate_ava",
        "evaluate_charades", "finetune_ava", "finetune_charades", "pretrain", "proposals_ava", "synthesize"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    train_run = next(r for r in children if r.info.run_name == "pretrain")
    assert train_run.data.params["pretrain.train.epochs"] == "2"
    history = client.get_metric_history(train_run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2]
    assert [m.step for m in client.get_metric_history(train_run.info.run_id, "clips_per_s")] == [1, 2]
    artifacts = {f.path for f in client.list_artifacts(train_run.info.run_id)}
    assert {"classes.json", "training_curves.png"} <= artifacts
    registered = client.get_model_version_by_alias("slowfast-kinetics", "champion")
    assert registered.run_id == train_run.info.run_id

    mtime = (repo / "models/pretrain/model.pt").stat().st_mtime_ns
    second = _dvc(repo, env, "repro")
    assert "Data and pipelines are up to date" in _ok(second)
    assert (repo / "models/pretrain/model.pt").stat().st_mtime_ns == mtime
    assert _git(repo, "status", "--porcelain") == ""


def _kill_after_first_checkpoint(repo: Path, env: dict, stage: str) -> int:
    """Start `dvc repro <stage>`, freeze it (SIGSTOP) as soon as its first training state is on disk, SIGKILL it;
    returns the step of the newest state left behind."""
    states = repo / "runs" / stage / "checkpoints"
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", stage], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not list_states(states):
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGSTOP)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    found = list_states(states)
    assert found, "the stage ended before writing a training state"
    return int(re.search(r"state_(\d+)", found[0].name)[1])


def test_a_clone_at_another_path_gives_the_same_lock_and_files_and_a_killed_stage_resumes_through_dvc(
        pipeline_repo, tmp_path):
    """Nothing in dvc.lock depends on the clone's path: a `git clone` elsewhere, its own DVC cache, reproduces
    every stage's outputs byte for byte (`git status` clean: the same dvc.lock and reports), although its
    `pretrain` is SIGKILLed after the first epoch and resumed by the next `dvc repro` from runs/pretrain/."""
    repo, env = pipeline_repo
    clone = tmp_path / "somewhere" / "else" / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert str(repo) not in (repo / "data/published/manifest.json").read_text()  # relative URLs
    _ok(_dvc(clone, env, "repro", "decode_kinetics"))
    lock = _lock(clone)
    for stage in ("synthesize", "download", "decode_kinetics"):
        assert lock[stage] == _lock(repo)[stage], stage

    step = _kill_after_first_checkpoint(clone, env, "pretrain")
    assert step == 3 and not (clone / "models/pretrain/model.pt").exists()  # killed after epoch 1 of 2
    out = _ok(_dvc(clone, env, "repro"))
    assert "resumed from runs/pretrain/checkpoints/state_000000003.pt" in out

    assert _lock(clone) == _lock(repo)  # data stages, and the training stages too (same machine, same threads)
    assert _git(clone, "status", "--porcelain") == ""  # the committed reports are the clone's
    for model in ("models/pretrain/model.pt", "models/charades/model.pt", "models/ava/model.pt",
                  "models/proposals_ava/person_detector.pt", "data/proposals/ava_val.csv"):
        assert (clone / model).read_bytes() == (repo / model).read_bytes(), model


def test_imported_proposals_are_a_dependency_of_their_stage(pipeline_repo, tmp_path):
    """`ava.proposals.import_file` (a PySlowFast CSV in proposals/): the stage uses it instead of the detector,
    only it and evaluate_ava re-run, and a changed file re-runs them; a file outside proposals/ fails naming the key."""
    repo, env = pipeline_repo
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True)
    (work / ".dvc/config.local").write_text(f"[cache]\n    dir = {repo / '.dvc/cache'}\n")  # reuse the outputs
    _ok(_dvc(work, env, "checkout"))
    truth = AvaSource(work / "data/raw/ava").boxes("val").drop_duplicates(["video_id", "timestamp", "person_id"])
    imported = work / "proposals/published.csv"

    def write(rows: pd.DataFrame) -> None:
        lines = [f"{r.video_id},{int(r.timestamp):04d},{r.x1},{r.y1},{r.x2},{r.y2},,0.95" for r in rows.itertuples()]
        imported.write_text("\n".join(lines) + "\n")

    write(truth)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["ava"]["proposals"]["import_file"] = "proposals/published.csv"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _ok(_dvc(work, env, "repro"))
    ran = set(re.findall(r"Running stage '(\w+)'", out))
    assert ran == {"proposals_ava", "evaluate_ava"}, out[-2000:]
    metrics = json.loads((work / "reports/proposals_ava.json").read_text())
    assert metrics["recall"] == metrics["precision"] == 1.0 and metrics["proposals"] == len(truth)
    assert json.loads((work / "models/proposals_ava/imported.json").read_text())["import_file"] == \
        "proposals/published.csv"
    # The AVA frame mAP, recomputed from the stage's written detections by an independent transcription of the
    # official evaluator (tests/metrics/ava_reference.py).
    ava = json.loads((work / "reports/evaluate_ava.json").read_text())
    detections = work / "reports/evaluate_ava/detections.csv"
    assert len(detections.read_text().splitlines()) == ava["detections"] > 0
    source = AvaSource(work / "data/raw/ava")
    want, _ = reference_ava_map(work / "data/raw/ava/annotations/ava_val_v2.2.csv", detections, source.label_map,
                                exclusions=source.excluded("val"))
    assert ava["map"] == pytest.approx(want, abs=1e-6) and ava["keyframes"] > 0

    keep = truth["timestamp"] == truth["timestamp"].min()
    write(truth[keep])  # the published file changes: DVC sees its dependency change
    assert re.search(r"modified:\s+proposals\b", _ok(_dvc(work, env, "status", "proposals_ava")))
    out = _ok(_dvc(work, env, "repro"))
    assert set(re.findall(r"Running stage '(\w+)'", out)) == {"proposals_ava", "evaluate_ava"}
    metrics = json.loads((work / "reports/proposals_ava.json").read_text())
    assert metrics["proposals"] == int(keep.sum()) < len(truth) and metrics["recall"] < 1.0

    outside = tmp_path / "published.csv"
    shutil.copy(imported, outside)
    params["ava"]["proposals"]["import_file"] = str(outside)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = _dvc(work, env, "repro", "proposals_ava")
    assert result.returncode != 0
    assert "ava.proposals.import_file" in result.stdout + result.stderr and "must be a file in proposals/" in \
        result.stdout + result.stderr


def test_a_slow_only_experiment_compares_in_dvc_and_going_back_restores_the_baseline_from_the_run_cache(
        pipeline_repo):
    """`dvc exp run -S model.preset=slow_tiny` (the README's Slow-only baseline): `dvc exp show` and
    `dvc metrics diff` hold both runs' headline metrics, `dvc plots diff` both runs' curves, and its evaluate_ava
    pairs with the SlowFast run in MLflow (Figure 3). Then the baseline's params again: every training stage is
    restored from DVC's run cache (no new MLflow training run) and the workspace equals the committed baseline."""
    repo, env = pipeline_repo
    baseline = {path: json.loads((repo / path).read_text())[key] for path, key in METRICS}
    baseline_model = (repo / "models/pretrain/model.pt").read_bytes()
    out = repo / "reports/evaluate_ava"
    assert (out / "per_class_ap.png").is_file() and not (out / "figure3.png").exists()  # no Slow-only run yet

    _ok(_dvc(repo, env, "exp", "run", "-n", "slow-only", "-S", "model.preset=slow_tiny"))
    experiment = {path: json.loads((repo / path).read_text())[key] for path, key in METRICS}

    shown = _json(_dvc(repo, env, "exp", "show", "--json"))
    head = _git(repo, "rev-parse", "HEAD").strip()
    [row] = [r for r in shown if r["rev"] == head]
    [exp] = [r for e in row["experiments"] for r in e["revs"] if r["name"] == "slow-only"]

    def metrics_of(entry: dict) -> dict:
        data = entry["data"]["metrics"]
        return {path: data[path]["data"][key] for path, key in METRICS}

    assert metrics_of(row) == baseline
    assert metrics_of(exp) == experiment
    assert exp["data"]["params"]["params.yaml"]["data"]["model"]["preset"] == "slow_tiny"
    [workspace] = [r for r in shown if r["rev"] == "workspace"]
    assert metrics_of(workspace) == experiment

    diff = _json(_dvc(repo, env, "metrics", "diff", "--json"))
    for path, key in METRICS:
        if baseline[path] != experiment[path]:
            assert diff[path][key]["old"] == baseline[path] and diff[path][key]["new"] == experiment[path]
    assert any(key in diff.get(path, {}) for path, key in METRICS)  # the presets do not score alike everywhere
    plots = _json(_dvc(repo, env, "plots", "diff", "--json"))
    assert {"training curves", "charades fine-tuning", "ava fine-tuning"} <= set(plots["data"])
    for name in ("training curves", "charades fine-tuning", "ava fine-tuning"):
        [plot] = plots["data"][name]
        assert set(plot["revisions"]) == {"workspace", "HEAD"}
        values = plot["content"]["data"]["values"]
        assert {v["rev"] for v in values} == {"workspace", "HEAD"} and {v["epoch"] for v in values} == {"1", "2"}

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("slowfast").experiment_id],
                              filter_string="tags.`slowfast.stage` = 'evaluate_ava'",
                              order_by=["attributes.start_time DESC"])
    assert [r.data.tags[TAG_ARCH] for r in runs] == ["slow", "slowfast"]
    slow, slowfast = runs
    assert slow.data.params["model.preset"] == "slow_tiny" and slowfast.data.params["model.preset"] == "slowfast_tiny"
    assert slow.data.tags[TAG_EVAL_DATA] == slowfast.data.tags[TAG_EVAL_DATA]  # the same proposals and data
    table = pd.read_csv(out / "figure3.csv")
    assert sorted(table["class_id"]) == sorted(int(k[3:]) for k in slow.data.metrics if k.startswith("ap/"))
    for row in table.itertuples():
        for column, run in (("ap_slow", slow), ("ap_slowfast", slowfast)):
            want = run.data.metrics[f"ap/{row.class_id}"]
            assert (math.isnan(want) and math.isnan(getattr(row, column))) or getattr(row, column) == want
    assert {"figure3.png", "figure3.csv"} <= {f.path for f in client.list_artifacts(slow.info.run_id)}

    trained = {stage: len(_stage_runs(repo, stage)) for stage in TRAINING_STAGES}
    _git(repo, "checkout", "--", "params.yaml")  # the baseline's params again
    back = _ok(_dvc(repo, env, "repro"))
    for stage in ("pretrain", "finetune_charades", "finetune_ava"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back, stage
    assert {stage: len(_stage_runs(repo, stage)) for stage in TRAINING_STAGES} == trained  # nothing retrained
    assert (repo / "models/pretrain/model.pt").read_bytes() == baseline_model  # the workspace's model
    assert {path: json.loads((repo / path).read_text())[key] for path, key in METRICS} == baseline
    assert _git(repo, "status", "--porcelain", "--", "dvc.lock", "reports", "params.yaml") == ""


def test_invalid_parameter_fails_before_any_work_naming_the_key(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["pretrain"]["train"]["base_lr"] = -1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop(PIPELINE_ID_ENV, None)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    result = _dvc(repo, env, "repro", "evaluate")
    assert result.returncode != 0
    assert "pretrain.train.base_lr: must be > 0, got -1" in result.stdout + result.stderr
    assert not (repo / "data").exists() and not (repo / "mlflow.db").exists()
