"""Users' own classification datasets (``CustomSource``): each layout from real encoded videos of several containers,
codecs, sizes and rates, and every bad entry a failure record that names it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from slowfast.config import ConfigError, from_mapping
from slowfast.data.decode import DecodeConfig
from slowfast.data.sampling import SamplingConfig
from slowfast.data.shards import FrameShards
from slowfast.data.sources import CustomDatasetConfig, CustomSource
from slowfast.data.transforms import TransformConfig
from slowfast.engine.finetune import decode_source, multiview_dataset, usable_samples
from slowfast.models import build_model, preset_config
from tests.data.videos import make_video, truncate

FRAMES = DecodeConfig(fps=30, short_side=32, jpeg_quality=85)


def _folder_dataset(root: Path) -> dict[str, str]:
    """A folder dataset with good videos of many kinds and one of every bad entry; returns {bad entry: why}."""
    make_video(root / "jumping" / "clip 1.mp4", width=64, height=48, num_frames=20)
    make_video(root / "jumping" / "clip 2.mkv", codec="ffv1", width=63, height=47, num_frames=12, rate=25)  # odd
    make_video(root / "jumping" / "nested" / "deep.avi", codec="mpeg4", width=48, height=32, num_frames=10)
    make_video(root / "jumping" / "very short.mp4", width=64, height=48, num_frames=2)  # shorter than any window
    make_video(root / "läufer ü" / "portrait.mp4", width=64, height=48, num_frames=16, rotation=90)  # rotated
    make_video(root / "läufer ü" / "日本語 clip.mov", codec="mjpeg", width=40, height=30, num_frames=10, rate=60)
    make_video(root / "läufer ü" / "vp9.webm", codec="libvpx-vp9", width=32, height=32, num_frames=8)
    truncate(make_video(root / "läufer ü" / "broken.mp4", num_frames=30), 0.3)
    (root / "empty class").mkdir()
    (root / "jumping" / "notes.txt").write_text("not a video")
    (root / "jumping" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored
    make_video(root / "stray.mp4", num_frames=4)
    outside = root.parent / "outside.mp4"
    make_video(outside, num_frames=4)
    os.symlink(outside, root / "jumping" / "link out.mp4")
    os.symlink(root / "jumping" / "clip 1.mp4", root / "jumping" / "same as clip 1.mp4")
    return {"empty class/": "empty class folder", "jumping/notes.txt": "not a video file",
            "stray.mp4": "outside any class folder", "jumping/link out.mp4": "outside the dataset root",
            "jumping/same as clip 1.mp4": "duplicate path", "läufer ü/broken.mp4": ""}


def test_folder_layout_reads_every_kind_of_video_and_names_every_bad_entry(tmp_path):
    root = tmp_path / "videos"
    bad = _folder_dataset(root)
    source = CustomSource(CustomDatasetConfig(root=str(root), val_fraction=0.3, seed=1))
    assert source.classes == ["jumping", "läufer ü"]  # the empty class folder is not a class
    train, val = source.samples("train"), source.samples("val")
    assert {v for v, _ in train} & {v for v, _ in val} == set()
    assert len(val) == 2 and {label for _, label in val} == {0, 1}  # per class: round(0.3 * 4) = 1

    report, failures = decode_source(source, tmp_path / "shards", FRAMES, progress=False)
    named = {f["video_id"]: f["reason"] for f in failures}
    assert set(named) == set(bad)
    for video_id, why in bad.items():
        assert why in named[video_id], (video_id, named[video_id])
    assert report.failures[0]["video_id"] == "läufer ü/broken.mp4"

    shards = FrameShards(tmp_path / "shards")
    portrait = shards.info("läufer ü/portrait.mp4")
    assert (portrait.height, portrait.width) == (43, 32)  # stored upright: 48x64 rotated by 90 degrees
    odd = shards.info("jumping/clip 2.mkv")
    assert (odd.height, odd.width) == (32, 43) and odd.fps == 30
    assert shards.info("läufer ü/日本語 clip.mov").num_frames == 5  # 10 frames at 60 fps: 1/6 s at 30 fps
    samples = usable_samples(source, shards)
    assert "läufer ü/broken.mp4" not in {v for s in samples.values() for v, _ in s}


def test_a_video_shorter_than_the_window_repeats_its_last_frame(tmp_path):
    make_video(tmp_path / "v" / "a" / "two frames.mp4", num_frames=2)
    make_video(tmp_path / "v" / "a" / "one frame.mp4", num_frames=1)
    make_video(tmp_path / "v" / "b" / "long.mp4", num_frames=40)
    source = CustomSource(CustomDatasetConfig(root=str(tmp_path / "v"), val_fraction=0.0))
    decode_source(source, tmp_path / "s", FRAMES, progress=False)
    config = preset_config("slowfast_tiny", num_classes=2)
    sampling = SamplingConfig(slow_frames=4, alpha=8, tau=16, test_clips=2)
    dataset = multiview_dataset(FrameShards(tmp_path / "s"), source.samples("train"), sampling=sampling,
                              transform=TransformConfig(train_scale=(32, 40), crop=32, test_size=32, test_crops=1),
                              config=build_model(config).config)
    item = dataset[[v for v, _ in dataset.records].index("a/two frames.mp4")]
    assert item["frames"].shape == (2, 32)
    assert set(item["frames"].flatten().tolist()) == {0, 1}  # frames clamped to the two there are
    assert item["inputs"][1].shape[2] == 32  # the Fast pathway still gets alpha*T frames
    single = dataset[[v for v, _ in dataset.records].index("a/one frame.mp4")]
    assert set(single["frames"].flatten().tolist()) == {0} and single["inputs"][0].shape[2] == 4


def test_seeded_split_is_reproducible_and_changes_with_the_seed(tmp_path):
    for c in ("a", "b"):
        for i in range(10):
            (tmp_path / c).mkdir(exist_ok=True)
            (tmp_path / c / f"{i}.mp4").write_bytes(b"x")  # the split needs no decoding
    val = [CustomSource(CustomDatasetConfig(root=str(tmp_path), seed=s)).samples("val") for s in (0, 0, 1)]
    assert val[0] == val[1] != val[2]
    assert sorted(label for _, label in val[0]) == [0, 0, 1, 1]


def test_folder_split_files_choose_train_and_val_and_name_missing_entries(tmp_path):
    for rel in ("a/1.mp4", "a/2.mp4", "b/1.mp4", "b/2.mp4", "b/3.mp4"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "trainlist.txt").write_text("a/1.mp4 1\nb/1.mp4 2\nb/1.mp4 2\nb/gone.mp4 2\n../escape.mp4 1\n")
    (tmp_path / "testlist.txt").write_text("a/2.mp4\nb/2.mp4\n")
    source = CustomSource(CustomDatasetConfig(root=str(tmp_path), train_list="trainlist.txt",
                                              val_list="testlist.txt"))
    assert source.samples("train") == [("a/1.mp4", 0), ("b/1.mp4", 1)]
    assert source.samples("val") == [("a/2.mp4", 0), ("b/2.mp4", 1)]  # b/3.mp4 is in neither list
    reasons = {f["video_id"]: f["reason"] for f in source.failures()}
    assert reasons["b/1.mp4"].startswith("trainlist.txt:3: duplicate path")
    assert reasons["b/gone.mp4"] == "trainlist.txt:4: missing file"
    assert "outside the dataset root" in next(r for v, r in reasons.items() if v.endswith("escape.mp4"))


def _list_dataset(root: Path) -> None:
    make_video(root / "videos" / "walk 1.mp4", num_frames=10)
    make_video(root / "videos" / "walk 2.avi", codec="mpeg4", num_frames=10)
    make_video(root / "videos" / "run ü.mkv", num_frames=10, rate=25)
    make_video(root / "videos" / "run 2.mov", codec="mjpeg", num_frames=10)
    make_video(root.parent / "secret.mp4", num_frames=4)


@pytest.mark.parametrize("layout", ["mmaction", "pyslowfast"])
def test_list_layouts_resolve_paths_under_the_root_and_record_every_bad_line(tmp_path, layout):
    root = tmp_path / "data"
    _list_dataset(root)
    (root / "classes.txt").write_text("walk\nrun\n")
    secret = (tmp_path / "secret.mp4").resolve()
    (root / "train.txt").write_text(
        "walk 1.mp4 0\nrun ü.mkv 1\nwalk 2.avi 0\nmissing.mp4 0\nrun 2.mov 7\nwalk 1.mp4 0\n"
        f"../../secret.mp4 0\n{secret} 1\njustonetoken\n\n# a comment\n")
    (root / "val.txt").write_text("run 2.mov run\n")
    source = CustomSource(CustomDatasetConfig(layout=layout, root=str(root), video_prefix="videos",
                                              train_list="train.txt", val_list="val.txt", classes="classes.txt"))
    assert source.classes == ["walk", "run"]
    assert source.samples("train") == [("videos/run ü.mkv", 1), ("videos/walk 1.mp4", 0), ("videos/walk 2.avi", 0)]
    assert source.samples("val") == [("videos/run 2.mov", 1)]  # a label may be the class name
    reasons = [f["reason"] for f in source.failures()]
    assert [r.split(":")[1] for r in reasons] == ["4", "5", "6", "7", "8", "9"]  # every bad line, by number
    assert reasons[0] == "train.txt:4: missing file"
    assert "unknown label '7'" in reasons[1] and source.failures()[1]["video_id"] == "videos/run 2.mov"
    assert "duplicate path" in reasons[2] and "videos/walk 1.mp4 (train.txt:1)" in reasons[2]
    assert "outside the dataset root" in reasons[3] and "outside the dataset root" in reasons[4]
    assert "expected '<path> <label>'" in reasons[5]
    assert set(source.video_paths()) == {v for s in ("train", "val") for v, _ in source.samples(s)}
    assert all(p.resolve().is_relative_to(root.resolve()) for p in source.video_paths().values())


def test_list_without_class_names_numbers_the_classes_and_splits_by_fraction(tmp_path):
    root = tmp_path / "d"
    for i in range(6):
        (root / f"{i}.mp4").parent.mkdir(exist_ok=True)
        (root / f"{i}.mp4").write_bytes(b"x")
    (root / "train.csv").write_text("".join(f"{i}.mp4 {i % 3}\n" for i in range(6)))
    source = CustomSource(CustomDatasetConfig(layout="pyslowfast", root=str(root), train_list="train.csv",
                                              val_fraction=0.5))
    assert source.classes == ["0", "1", "2"]
    assert len(source.samples("train")) == len(source.samples("val")) == 3


def test_nothing_usable_is_one_clear_error_naming_the_failures(tmp_path):
    (tmp_path / "a").mkdir()
    truncate(make_video(tmp_path / "a" / "bad.mp4", num_frames=20), 0.2)
    source = CustomSource(CustomDatasetConfig(root=str(tmp_path), val_fraction=0.0))
    decode_source(source, tmp_path / ".shards", FRAMES, progress=False)
    with pytest.raises(ValueError, match=r"no usable training video is left: 1 failure records \(a/bad.mp4: "):
        usable_samples(source, FrameShards(tmp_path / ".shards"))


def test_invalid_dataset_params_fail_naming_the_key():
    with pytest.raises(ConfigError, match="train_list"):
        from_mapping(CustomDatasetConfig, {"layout": "mmaction"})
    with pytest.raises(ConfigError, match="layout"):
        from_mapping(CustomDatasetConfig, {"layout": "csv"})
    with pytest.raises(ConfigError, match="val_fraction"):
        from_mapping(CustomDatasetConfig, {"val_fraction": 1.0})
    assert np.isclose(CustomDatasetConfig().val_fraction, 0.2)
