"""FrameShards: random access to decoded frames by index, safe against bad manifests."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from slowfast.data import decode
from slowfast.data.decode import DecodeConfig, decode_videos
from slowfast.data.jpeg import cut_jpeg
from slowfast.data.shards import FrameShards
from tests.data.videos import make_video, read_index


@pytest.fixture(scope="module")
def shard_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    sources = {"a": make_video(root / "a.mp4", num_frames=50), "b": make_video(root / "b.mp4", num_frames=20)}
    decode_videos(sources, root / "out", DecodeConfig(short_side=32, row_group_frames=8), progress=False)
    return root / "out"


def test_read_returns_the_asked_frames_in_order_with_repeats(shard_root):
    shards = FrameShards(shard_root)
    assert shards.videos() == ["a", "b"] and len(shards) == 2 and "a" in shards
    asked = [49, 3, 3, 17, 0, 40, 8]
    frames = shards.read("a", asked)
    assert frames.shape == (7, 32, 43, 3) and frames.dtype == np.uint8
    assert [read_index(f) for f in frames] == asked
    assert shards.read("b", []).shape == (0, 32, 43, 3)


def test_out_of_range_frames_and_unknown_videos_are_errors(shard_root):
    shards = FrameShards(shard_root)
    with pytest.raises(IndexError, match="frame 20 outside 0..19"):
        shards.read("b", [0, 20])
    with pytest.raises(IndexError):
        shards.read("b", [-1])
    with pytest.raises(KeyError, match="nope"):
        shards.info("nope")


def test_a_pickled_reader_reads_the_same_frames(shard_root):
    shards = FrameShards(shard_root)
    before = shards.read("a", [1, 2, 30])
    clone = pickle.loads(pickle.dumps(shards))
    np.testing.assert_array_equal(clone.read("a", [1, 2, 30]), before)


def test_manifest_shard_names_cannot_leave_the_shard_folder(shard_root, tmp_path):
    manifest = json.loads((shard_root / "manifest.json").read_text())
    manifest["videos"]["a"]["runs"][0][0] = "../../etc/passwd"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="invalid shard name"):
        FrameShards(tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest"):
        FrameShards(tmp_path / "empty")


def test_a_manifest_pointing_at_the_wrong_rows_is_detected(shard_root, tmp_path):
    manifest = json.loads((shard_root / "manifest.json").read_text())
    (tmp_path / "shards").symlink_to(shard_root / "shards")
    manifest["videos"]["a"]["runs"][0][1] += 5  # rows shifted: frame k would come back as frame k+5
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="holds frame"):
        FrameShards(tmp_path).read("a", [0])


def test_decode_threads_read_the_same_frames_and_a_pickled_reader_restarts_its_pool(shard_root):
    asked = [49, 3, 3, 17, 0, 40, 8, 31, 32]
    expected = FrameShards(shard_root).read("a", asked)
    threaded = FrameShards(shard_root, decode_threads=3)
    np.testing.assert_array_equal(threaded.read("a", asked), expected)
    clone = pickle.loads(pickle.dumps(threaded))  # after a read: the pool exists and must not be pickled
    np.testing.assert_array_equal(clone.read("a", asked), expected)
    assert [read_index(f) for f in clone.read("a", asked)] == asked
    with pytest.raises(ValueError, match="decode_threads"):
        FrameShards(shard_root, decode_threads=0)


@pytest.mark.parametrize("bigger", [True, False])
def test_frames_of_another_size_than_the_manifest_says_are_an_error_not_garbage(shard_root, tmp_path, bigger):
    manifest = json.loads((shard_root / "manifest.json").read_text())
    (tmp_path / "shards").symlink_to(shard_root / "shards")
    manifest["videos"]["a"]["height"] += 4 if bigger else -4
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="JPEG of 43x32 pixels|too small"):
        FrameShards(tmp_path).read("a", [0, 1])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_box_reads_the_whole_frames_pixels_under_it(shard_root, tmp_path, threads):
    root = tmp_path / "big"  # 85x64 frames: 6 blocks of 16 pixels per row, restart markers every 2
    decode_videos({"c": make_video(tmp_path / "c.mp4", num_frames=12)}, root, DecodeConfig(short_side=64),
                  progress=False)
    for reader, vid, asked in ((FrameShards(root, decode_threads=threads), "c", [11, 2, 2, 7, 0]),
                               (FrameShards(shard_root, decode_threads=threads), "a", [49, 3, 3, 17])):
        whole = reader.read(vid, asked)
        height, width = whole.shape[1:3]
        for box in ((0, 0, width, height), (1, 1, width - 1, height - 1), (33, 17, 70, 50), (16, 0, 32, 16),
                    (width - 5, height - 3, width, height)):
            x0, y0, x1, y1 = box = (min(box[0], width - 1), min(box[1], height - 1), min(box[2], width),
                                    min(box[3], height))
            np.testing.assert_array_equal(reader.read(vid, asked, box=box), whole[:, y0:y1, x0:x1], err_msg=str(box))
        assert reader.read(vid, [], box=(1, 2, 5, 9)).shape == (0, 7, 4, 3)
        with pytest.raises(ValueError, match=r"box \(0, 0, %d, 5\) is not inside" % (width + 1)):
            reader.read(vid, [0], box=(0, 0, width + 1, 5))
        with pytest.raises(ValueError, match="not inside"):
            reader.read(vid, [0], box=(4, 4, 4, 9))


@pytest.mark.parametrize("bigger", [True, False])
def test_a_box_on_frames_of_another_size_than_the_manifest_says_is_an_error_not_garbage(tmp_path, bigger):
    root = tmp_path / "big"
    decode_videos({"c": make_video(tmp_path / "c.mp4", num_frames=4)}, root, DecodeConfig(short_side=64),
                  progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["videos"]["c"]["height"] += 8 if bigger else -8
    (root / "manifest.json").write_text(json.dumps(manifest))
    for box in ((40, 10, 80, 50), (0, 0, 85, 56)):  # a cut, and the whole frame
        with pytest.raises(ValueError, match="JPEG of 85x64 pixels, expected 85x%d" % (72 if bigger else 56)):
            FrameShards(root).read("c", [0, 1], box=box)


def test_shards_without_restart_markers_still_read_boxes_by_decoding_whole_frames(tmp_path, monkeypatch):
    """Shards written before the codec had restart markers (plain Pillow JPEGs) stay valid."""
    def plain_jpeg(rgb, quality):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    monkeypatch.setattr(decode, "encode_jpeg", plain_jpeg)
    decode_videos({"c": make_video(tmp_path / "c.mp4", num_frames=6)}, tmp_path / "old", DecodeConfig(short_side=64),
                  progress=False)
    reader = FrameShards(tmp_path / "old")
    data = pq.read_table(next((tmp_path / "old" / "shards").iterdir())).column("jpeg")[0].as_py()
    assert b"\xff\xdd" not in data and cut_jpeg(data, (33, 17, 70, 50)) is None  # no restart markers: no cut
    whole = reader.read("c", [5, 0, 3])
    np.testing.assert_array_equal(reader.read("c", [5, 0, 3], box=(33, 17, 70, 50)), whole[:, 17:50, 33:70])
