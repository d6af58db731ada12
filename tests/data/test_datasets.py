"""Clip datasets over real frame shards: shapes, uint8 clips and their normalisation, labels, boxes through
crop/flip, determinism."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from slowfast.data.datasets import AvaDataset, CharadesDataset, KineticsDataset, ava_collate, clip_pathways
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.formats.charades import CharadesAction, CharadesVideo
from slowfast.data.sampling import SamplingConfig, generator_for, keyframe_windows, random_start
from slowfast.data.shards import FrameShards
from slowfast.data.transforms import TransformConfig, apply_view, crop_views, random_view, view_boxes
from slowfast.models import pack_pathways, preset_config
from tests.data.videos import make_video, read_index

SAMPLING = SamplingConfig(slow_frames=2, alpha=4, tau=8, test_clips=2)  # Fast: 8 frames every 2, span 16
TRANSFORM = TransformConfig(train_scale=(48, 60), crop=40, test_size=48)


def pack(clip: torch.Tensor) -> list[torch.Tensor]:
    return [clip[:, ::4], clip]


def to_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) -> (H, W, 3)."""
    return x.permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    sources = {"sq": make_video(root / "sq.mp4", width=48, height=48, num_frames=40),
               "wide": make_video(root / "wide.mp4", width=64, height=48, num_frames=90)}
    decode_videos(sources, root / "out", DecodeConfig(short_side=48), progress=False)
    return FrameShards(root / "out")


def kinetics(shards, train):
    return KineticsDataset(shards, [("sq", 3), ("wide", 7)], sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                           train=train, seed=5)


def test_kinetics_training_item_shapes_uint8_clips_and_their_normalisation(shards):
    ds = kinetics(shards, train=True)
    for index in range(len(ds)):
        item = ds[index]
        slow, fast = item["inputs"]
        assert slow.shape == (3, 2, 40, 40) and fast.shape == (3, 8, 40, 40)
        assert slow.dtype == fast.dtype == torch.uint8 and int(fast.min()) < int(fast.max())
        torch.testing.assert_close(slow, fast[:, ::4], rtol=0, atol=0)
        model_input = ds.normalize(fast.unsqueeze(0))  # as the engine does to a batch on its device
        assert model_input.dtype == torch.float32 and model_input.is_contiguous()
        expected = (fast.double() / 255 - 0.45) / 0.225
        torch.testing.assert_close(model_input[0].double(), expected, rtol=0, atol=2e-6)
        assert item["label"].dtype == torch.int64 and item["label"].shape == () and item["index"] == index
        frames = item["frames"]
        assert frames.shape == (8,) and torch.all(frames[1:] - frames[:-1] == 2)
        assert 0 <= int(frames[0]) and int(frames[-1]) < shards.info(item["video_id"]).num_frames


def test_training_items_read_only_the_crop_and_get_the_whole_frames_pixels(shards):
    """Training clips decode only the JPEG blocks under their crop; the pixels are those of the whole frames."""
    ds = kinetics(shards, train=True)
    ava = AvaDataset(shards, ava_boxes(), class_ids=[1, 2, 3], sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                     train=True, seed=5)
    flips, crops = set(), set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        ava.set_epoch(epoch)
        for index in range(len(ds)):
            item = ds[index]
            info = shards.info(item["video_id"])
            gen = generator_for(5, epoch, index)  # the dataset's draws: window start, then the view
            random_start(info.num_frames, SAMPLING, info.fps, gen)
            view = random_view(info.height, info.width, TRANSFORM, gen)
            flips.add(view.flip)
            crops.add((view.x0, view.y0, view.w))
            whole = clip_pathways(shards.read(item["video_id"], item["frames"].numpy()), [view], pack)[0]
            for got, expected in zip(item["inputs"], whole):
                torch.testing.assert_close(got, expected, rtol=0, atol=0)
        for index in range(len(ava)):
            item = ava[index]
            view = random_view(48, 64, TRANSFORM, generator_for(5, epoch, index))
            whole = clip_pathways(shards.read("wide", item["frames"].numpy()), [view], pack)[0]
            torch.testing.assert_close(item["inputs"][1], whole[1], rtol=0, atol=0)
    assert flips == {True, False} and len(crops) > 4


def test_testing_item_stacks_every_view_and_shows_the_sampled_frames(shards):
    item = kinetics(shards, train=False)[0]  # "sq": 40 frames, square, so every crop is the whole frame
    slow, fast = item["inputs"]
    assert slow.shape == (6, 3, 2, 48, 48) and fast.shape == (6, 3, 8, 48, 48)  # 2 clips × 3 crops
    assert item["frames"].tolist() == [list(range(0, 16, 2)), list(range(24, 40, 2))]
    for view in range(6):
        shown = [read_index(to_image(fast[view, :, t])) for t in range(8)]
        assert shown == item["frames"][view // 3].tolist()


@pytest.mark.parametrize("arch", ["slowfast", "slow", "fast"])
def test_pathways_are_the_frames_pack_chooses_kept_frame_major(arch):
    frames = np.random.default_rng(0).integers(0, 256, (32, 30, 40, 3), dtype=np.uint8)
    pack = functools.partial(pack_pathways, config=preset_config("slowfast_tiny", arch=arch))  # 4 of 32 frames
    views = [random_view(30, 40, TRANSFORM, torch.Generator().manual_seed(seed)) for seed in range(4)]
    for view, pathways in zip(views, clip_pathways(frames, views, pack)):
        expected = pack(apply_view(frames, view))
        assert len(pathways) == len(expected)
        for got, want in zip(pathways, expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            assert got.dtype == torch.uint8 and got.permute(1, 2, 3, 0).is_contiguous()  # (T, H, W, 3) memory


def test_three_test_crops_cover_left_centre_and_right_of_the_long_side():
    frames = np.broadcast_to(np.arange(80, dtype=np.uint8)[None, None, :, None], (1, 48, 80, 3)).copy()
    views = crop_views(48, 80, TRANSFORM)
    assert [(v.x0, v.y0, v.w, v.h) for v in views] == [(0, 0, 48, 48), (16, 0, 48, 48), (32, 0, 48, 48)]
    for view in views:
        out = apply_view(frames, view)
        assert out.shape == (3, 1, 48, 48)
        assert to_image(out[:, 0])[0, 0, 0] == view.x0 and to_image(out[:, 0])[0, -1, 0] == view.x0 + 47
    tall = crop_views(80, 48, TRANSFORM)
    assert [v.y0 for v in tall] == [0, 16, 32] and all(v.x0 == 0 for v in tall)


def test_boxes_follow_the_pixels_through_scale_crop_and_flip():
    height, width = 60, 80
    box = np.array([[0.25, 0.2, 0.6, 0.7]])
    frames = np.zeros((1, height, width, 3), np.uint8)
    frames[:, 12:42, 20:48] = 255  # exactly the normalised box above
    flips = set()
    for seed in range(16):
        view = random_view(height, width, TRANSFORM, torch.Generator().manual_seed(seed))
        flips.add(view.flip)
        image = to_image(apply_view(frames, view)[:, 0])[..., 0] / 255.0
        x1, y1, x2, y2 = view_boxes(box, height, width, view)[0]
        assert 0 <= x1 < x2 <= 40 and 0 <= y1 < y2 <= 40
        inside = image[int(np.ceil(y1)) + 1 : int(y2) - 1, int(np.ceil(x1)) + 1 : int(x2) - 1]
        outside = image.copy()
        outside[max(int(y1) - 1, 0) : int(np.ceil(y2)) + 1, max(int(x1) - 1, 0) : int(np.ceil(x2)) + 1] = 0
        assert inside.size and inside.min() > 0.9 and outside.max() < 0.1
    assert flips == {True, False}


def ava_boxes() -> pd.DataFrame:
    rows = [("wide", 900, 0.1, 0.2, 0.5, 0.9, 1, 0), ("wide", 900, 0.1, 0.2, 0.5, 0.9, 3, 0),
            ("wide", 900, 0.5, 0.0, 1.0, 1.0, 2, 1), ("wide", 900, 0.5, 0.0, 1.0, 1.0, 99, 1),
            ("wide", 901, 0.2, 0.2, 0.4, 0.4, 99, 2),  # only an action outside the label map: dropped
            ("wide", 902, 0.0, 0.5, 0.5, 1.0, 2, 0), ("gone", 902, 0.0, 0.5, 0.5, 1.0, 2, 0)]
    return pd.DataFrame(rows, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "person_id"])


def test_ava_items_have_boxes_in_input_pixels_multi_hot_labels_and_clamped_frames(shards):
    ds = AvaDataset(shards, ava_boxes(), class_ids=[1, 2, 3], sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                    train=False)
    assert len(ds) == 2  # keyframes 900 and 902 of "wide"; 901 has no labelled box, "gone" is not decoded
    first, last = ds[0], ds[1]
    assert first["timestamp"] == 900 and first["inputs"][1].shape == (3, 8, 48, 64)
    assert first["frames"].tolist() == [0, 0, 0, 0, 0, 2, 4, 6]  # centred on frame 0: clamped at the start
    assert last["frames"].tolist() == list(range(52, 68, 2))  # keyframe 902 -> frame 60
    np.testing.assert_allclose(first["boxes"].numpy(), [[6.4, 9.6, 32.0, 43.2], [32.0, 0.0, 64.0, 48.0]], atol=1e-4)
    assert first["labels"].tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    batch = ava_collate([first, last])
    assert batch["inputs"][1].shape == (2, 3, 8, 48, 64) and batch["labels"].shape == (3, 3)
    assert batch["boxes"][:, 0].tolist() == [0.0, 0.0, 1.0] and batch["boxes"].shape == (3, 5)

    train = AvaDataset(shards, ava_boxes(), class_ids=[1, 2, 3], sampling=SAMPLING, transform=TRANSFORM,
                       pack=pack, train=True)
    for index in range(len(train)):
        item = train[index]
        assert item["inputs"][1].shape == (3, 8, 40, 40)
        assert float(item["boxes"].min()) >= 0 and float(item["boxes"].max()) <= 40


def test_ava_reads_the_same_clips_from_shards_decoded_only_around_keyframes(shards, tmp_path):
    boxes = ava_boxes()
    windows = keyframe_windows({"wide": boxes["timestamp"]}, SAMPLING)
    decode_videos({"wide": shards.info("wide").path}, tmp_path, DecodeConfig(short_side=48), windows=windows,
                  progress=False)
    windowed = FrameShards(tmp_path)
    assert windowed.info("wide").stored_frames < windowed.info("wide").num_frames == 90
    args = dict(class_ids=[1, 2, 3], sampling=SAMPLING, transform=TRANSFORM, pack=pack, train=False)
    full, part = AvaDataset(shards, boxes, **args), AvaDataset(windowed, boxes, **args)
    for index in range(len(full)):
        torch.testing.assert_close(part[index]["inputs"][1], full[index]["inputs"][1], rtol=0, atol=0)


def test_charades_labels_are_the_actions_overlapping_the_sampled_window(shards):
    actions = tuple(CharadesAction(c, a, b) for c, a, b in [(0, 0.0, 0.5), (1, 1.0, 2.0), (2, 2.5, 3.0), (3, 0.0, 3.0)])
    video = CharadesVideo("wide", actions, length=3.0)
    ds = CharadesDataset(shards, [video], num_classes=5, sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                         train=True)
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        start, end = int(item["frames"][0]) / 30, (int(item["frames"][-1]) + 1) / 30
        expected = [float(a.start < end and a.end > start) for a in actions] + [0.0]
        assert item["label"].tolist() == expected and item["label"].dtype == torch.float32
        seen.add(tuple(expected))
    assert len(seen) >= 2  # different windows really give different labels
    test = CharadesDataset(shards, [video], num_classes=5, sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                           train=False)
    assert test[0]["label"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_items_are_the_same_with_dataloader_workers_and_change_with_the_epoch(shards):
    ds = KineticsDataset(shards, [("sq", 0), ("wide", 1)] * 3, sampling=SAMPLING, transform=TRANSFORM, pack=pack,
                         train=True, seed=11)
    ds.set_epoch(3)
    direct = [ds[i] for i in range(len(ds))]
    loaded = list(DataLoader(ds, batch_size=2, num_workers=2, shuffle=False, collate_fn=ds.collate))
    for b, batch in enumerate(loaded):
        # The batch keeps the clips' (T, H, W, 3) memory order: collating copied bytes without reordering them.
        assert batch["inputs"][1].is_contiguous(memory_format=torch.channels_last_3d)
        for j in range(2):
            item = direct[2 * b + j]
            torch.testing.assert_close(batch["inputs"][1][j], item["inputs"][1], rtol=0, atol=0)
            assert batch["frames"][j].tolist() == item["frames"].tolist()
    ds.set_epoch(4)
    assert any(not torch.equal(ds[i]["inputs"][1], direct[i]["inputs"][1]) for i in range(len(ds)))


def test_records_of_videos_missing_from_the_shards_are_dropped(shards, caplog):
    ds = KineticsDataset(shards, [("sq", 0), ("never_decoded", 1)], sampling=SAMPLING, transform=TRANSFORM,
                         pack=pack, train=True)
    assert ds.records == [("sq", 0)]
    assert "1 of 2 records dropped" in caplog.text
