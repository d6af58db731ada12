"""The shards' frame codec: restart markers, and decoding only the blocks under a box with the whole decode's pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from slowfast.data import jpeg


def textured(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour blobs plus noise: real work for the DCT and distinct chroma everywhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), np.int16)
    return np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


def pillow_jpeg(img: np.ndarray, *, gray: bool = False, **options) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(img).convert("L") if gray else Image.fromarray(img)).save(buf, format="JPEG", **options)
    return buf.getvalue()


def restart_interval(data: bytes) -> int:
    at = data.find(b"\xff\xdd")
    return -1 if at < 0 else int.from_bytes(data[at + 4 : at + 6], "big")


def edge_boxes(height: int, width: int, rng: np.random.Generator, n: int) -> list[tuple[int, int, int, int]]:
    """Random boxes, half of them with edges on or next to 16-pixel block boundaries (where a cut starts)."""
    boxes = []
    for k in range(n):
        if k % 2:
            xs = sorted(rng.choice([v for v in range(0, width + 1) if v % 16 in (0, 1, 15)], 2, replace=False))
            ys = sorted(rng.choice([v for v in range(0, height + 1) if v % 16 in (0, 1, 15)], 2, replace=False))
        else:
            xs = sorted(rng.choice(width + 1, 2, replace=False))
            ys = sorted(rng.choice(height + 1, 2, replace=False))
        boxes.append((int(xs[0]), int(ys[0]), int(xs[1]), int(ys[1])))
    return boxes


def test_frames_carry_restart_markers_every_two_blocks_or_every_block_when_a_row_has_an_odd_number():
    even = jpeg.encode_jpeg(textured(256, 340, 0), 90)  # 22 blocks of 16 pixels per row
    odd = jpeg.encode_jpeg(textured(64, 40, 1), 90)  # 3 blocks per row
    assert restart_interval(even) == 2 and restart_interval(odd) == 1
    with Image.open(io.BytesIO(even)) as img:  # still an ordinary baseline 4:2:0 JPEG
        assert img.size == (340, 256) and img.layer[0][1:3] == (2, 2) and "progressive" not in img.info


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["444", "422", "420"])
@pytest.mark.parametrize("interval", [1, 2, 3])
def test_a_box_decodes_to_the_whole_decodes_pixels_bit_for_bit(subsampling, interval):
    rng = np.random.default_rng(subsampling * 10 + interval)
    for trial in range(4):
        height, width = int(rng.integers(17, 130)), int(rng.integers(17, 200))
        img = textured(height, width, trial)
        data = pillow_jpeg(img, quality=int(rng.integers(60, 98)), subsampling=subsampling,
                           restart_marker_blocks=interval, gray=trial == 3)
        full = jpeg.decode_jpeg(data)
        assert full.shape == (height, width, 3)
        cut = 0
        for box in edge_boxes(height, width, rng, 40):
            x0, y0, x1, y1 = box
            np.testing.assert_array_equal(jpeg.decode_jpeg(data, box=box), full[y0:y1, x0:x1], err_msg=str(box))
            found = jpeg.cut_jpeg(data, box)
            cut += found is not None and found[0] is not data
        blocks_per_row = -(-width // (8 if trial == 3 or subsampling == 0 else 16))
        if blocks_per_row % interval == 0:  # cuttable: most boxes need less than the whole image
            assert cut > 20


def test_a_training_crop_decodes_about_half_of_a_frame():
    data = jpeg.encode_jpeg(textured(256, 340, 2), 90)
    box = (70, 30, 270, 230)  # a 200-pixel crop, the middle of the training range 179..224
    sub, (x, y, w, h) = jpeg.cut_jpeg(data, box)
    with Image.open(io.BytesIO(bytes(sub))) as img:  # a valid JPEG of exactly the region
        assert img.size == (w, h)
        region = np.asarray(img.convert("RGB"))
    assert x <= 70 - 1 and y <= 30 - 1 and x + w >= 270 + 1 and y + h >= 230 + 1  # a pixel of context around
    assert w % 32 == 0 and w * h < 0.65 * 340 * 256 and len(sub) < 0.7 * len(data)
    # Pillow's own decode of the cut (libjpeg's API, not simplejpeg's) has the whole frame's pixels under the box
    np.testing.assert_array_equal(region[30 - y : 230 - y, 70 - x : 270 - x], jpeg.decode_jpeg(data)[30:230, 70:270])


def test_files_that_cannot_be_cut_are_decoded_whole_with_the_same_pixels():
    img = textured(96, 160, 3)
    box = (20, 17, 90, 80)
    for options in ({"quality": 90}, {"quality": 90, "progressive": True, "restart_marker_blocks": 1},
                    {"quality": 90, "restart_marker_blocks": 3}):  # 3 does not divide the 10 blocks of a row
        data = pillow_jpeg(img, **options)
        assert jpeg.cut_jpeg(data, box) is None, options
        np.testing.assert_array_equal(jpeg.decode_jpeg(data, box=box), jpeg.decode_jpeg(data)[17:80, 20:90])
    data = jpeg.encode_jpeg(img, 90)
    assert jpeg.cut_jpeg(data, (0, 0, 160, 96)) == (data, (0, 0, 160, 96))  # the whole image: nothing to cut


def test_the_pillow_fallback_cuts_the_same_pixels_and_boxes_are_checked(monkeypatch):
    data = jpeg.encode_jpeg(textured(64, 96, 4), 90)
    box = (33, 17, 70, 50)
    expected = jpeg.decode_jpeg(data, box=box)
    monkeypatch.setattr(jpeg, "simplejpeg", None)
    out = np.zeros((33, 37, 3), np.uint8)
    assert jpeg.decode_jpeg(data, out=out, box=box) is out
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="expected 36x33"):
        jpeg.decode_jpeg(data, out=np.zeros((33, 36, 3), np.uint8), box=box)
    with pytest.raises(ValueError, match="not inside the"):
        jpeg.decode_jpeg(data, box=(0, 0, 97, 10))
    with pytest.raises(ValueError, match="not inside the"):
        jpeg.decode_jpeg(data, box=(-3, 0, 20, 10))
    np.testing.assert_array_equal(jpeg.decode_jpeg(data, box=list(box)), expected)  # any sequence of four ints


def test_fast_jpeg_decoder_gives_pillows_pixels_and_writes_into_the_given_buffer(monkeypatch):
    rng = np.random.default_rng(3)
    image = np.asarray(Image.fromarray(rng.integers(0, 256, (12, 17, 3), np.uint8)).resize((85, 60)))
    data = jpeg.encode_jpeg(image, 90)
    with Image.open(io.BytesIO(data)) as img:
        pillow = np.asarray(img.convert("RGB"))
    mse = np.mean((pillow.astype(np.float64) - image) ** 2)
    assert 0 < mse < 255**2 / 1e3  # a real lossy round trip (PSNR > 30 dB), not a copy
    for module in (jpeg.simplejpeg, None):  # the installed decoder, then the Pillow fallback
        monkeypatch.setattr(jpeg, "simplejpeg", module)
        buffer = np.zeros_like(image)
        got = jpeg.decode_jpeg(data, out=buffer)
        assert np.shares_memory(got, buffer)
        np.testing.assert_array_equal(buffer, pillow)
        np.testing.assert_array_equal(jpeg.decode_jpeg(data), pillow)
        with pytest.raises(ValueError, match="JPEG of 85x60 pixels, expected 85x64"):
            jpeg.decode_jpeg(data, out=np.zeros((64, 85, 3), np.uint8))
