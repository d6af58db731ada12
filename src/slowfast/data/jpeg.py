"""The frame codec of the shards: JPEG with restart markers, decoded whole or only under a box.

Frames are baseline 4:2:0 JPEGs (libjpeg-turbo through Pillow) with a restart marker every two MCUs (32 pixels of
a 16-pixel-high row of blocks; every MCU when a row has an odd number of them). A restart marker resets the entropy
decoder, so the coded bytes between two markers stand on their own: ``decode_jpeg(data, box=...)`` cuts out the
blocks under the box plus the pixel of context that chroma upsampling reads on each side, renumbers their markers
into a smaller valid JPEG, and decodes only that. The pixels are those of decoding the whole frame and cropping,
bit for bit (tested on 4:2:0, 4:2:2, 4:4:4 and grey). A SlowFast training crop of a 340×256 frame (side 179-224)
needs ~56% of its pixels; with the cut itself it costs ~80% of a whole-frame decode. The markers cost ~2% bytes
(``python benchmarks/loader.py --sections jpeg``).

JPEGs the cut does not apply to are decoded whole, then cropped, with the same pixels. These are progressive or
arithmetic-coded files, files without restart markers (such as shards written before this codec: they stay valid;
delete a shard folder to re-encode it), and files whose restart interval does not divide a row of blocks.
"""

from __future__ import annotations

import dataclasses
import functools
import io

import numpy as np
from PIL import Image

try:  # optional: a faster JPEG decoder; Pillow gives the same pixels without it
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the installation
    simplejpeg = None

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end-exclusive

_SOF_SEQUENTIAL = (0xC0, 0xC1)  # baseline and extended sequential, Huffman-coded: the only frames cut
_RST = 0xD0  # RST0..RST7 are 0xD0..0xD7
_EOI = b"\xff\xd9"


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """4:2:0 JPEG bytes of an RGB image with restart markers every 32 pixels of an MCU row (every 16 when the row
    has an odd number of MCUs) (Pillow/libjpeg-turbo: fastest here; see benchmarks/loader.py)."""
    buf = io.BytesIO()
    interval = 2 if -(-rgb.shape[1] // 16) % 2 == 0 else 1  # in 16×16 MCUs; it must divide the MCUs of a row
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling="4:2:0",
                              restart_marker_blocks=interval)
    return buf.getvalue()


def decode_jpeg(data: bytes, out: np.ndarray | None = None, box: Box | None = None) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` image of JPEG bytes, or of its pixels under ``box``: ``decode_jpeg(data, box=b)`` is
    ``decode_jpeg(data)[y0:y1, x0:x1]``, decoding only the MCUs the box needs when the file allows it (module
    docstring). The result is written into ``out`` (a C-contiguous array of the result's shape) if given.

    simplejpeg when installed: the same libjpeg-turbo and the same (accurate) DCT and upsampling as Pillow, hence the
    same pixels, but about 1.5× as fast on 256p frames; it skips Pillow's file-object and image-object layers and
    decodes straight into ``out`` (no copy). Its fast-DCT and fast-upsampling flags would save another ~10% but
    change the pixels (41 dB from the accurate decode), so they are not used.
    """
    if box is None:
        return _decode(data, out)
    x0, y0, x1, y1 = box
    cut = cut_jpeg(data, box)
    region = _decode(data if cut is None else cut[0])
    ox, oy = (0, 0) if cut is None else cut[1][:2]
    if not (ox <= x0 < x1 <= ox + region.shape[1] and oy <= y0 < y1 <= oy + region.shape[0]):
        raise ValueError(f"box {box} is not inside the {region.shape[1]}x{region.shape[0]} JPEG")
    crop = region[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    if out is None:
        return np.ascontiguousarray(crop)
    if out.shape != crop.shape:
        raise ValueError(f"box of {crop.shape[1]}x{crop.shape[0]} pixels, expected {out.shape[1]}x{out.shape[0]}")
    out[...] = crop
    return out


def _decode(data: bytes | bytearray, out: np.ndarray | None = None) -> np.ndarray:
    if simplejpeg is not None:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)  # too small a buffer: ValueError
    else:
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
        if out is not None and rgb.shape == out.shape:
            out[...] = rgb
            rgb = out
    if out is not None and rgb.shape != out.shape:  # never leave a partly written buffer looking valid
        raise ValueError(f"JPEG of {rgb.shape[1]}x{rgb.shape[0]} pixels, expected {out.shape[1]}x{out.shape[0]}")
    return rgb


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG :func:`cut_jpeg` can read the header of (None for others: decode them to know)."""
    header = _header(data)
    return None if header is None else (header[2], header[3])


def cut_jpeg(data: bytes, box: Box) -> tuple[bytes | bytearray, tuple[int, int, int, int]] | None:
    """The JPEG to decode for the pixels under ``box`` and the region ``(x, y, width, height)`` of the full image it
    decodes to (``data`` itself and the whole image when the box needs all of it); None when the file cannot be cut
    (module docstring): decode it whole."""
    header = _header(data)
    if header is None:
        return None
    scan = header[1]
    plan = _plan(data[:scan], tuple(int(v) for v in box))
    if plan is None or plan.header is None:
        return None if plan is None else (data, plan.region)
    a = np.frombuffer(data, np.uint8)
    ff = scan + np.flatnonzero(a[scan:-2] == 0xFF)
    markers = ff[a[ff + 1] != 0]  # 0xFF 0x00 is a coded 0xFF byte; anything else is a marker
    if len(markers) != plan.markers or data[-2:] != _EOI or np.any((a[markers + 1] & 0xF8) != _RST):
        return None  # another marker inside the scan (several scans, DNL, ...) or a miscount: decode whole
    # Segment j is data[bound[j] + 2 : bound[j + 1]], each followed by a marker (RST, or EOI after the last one).
    bound = np.concatenate([[scan - 2], markers, [len(data) - 2]])
    first, stop = bound[plan.first] + 2, bound[plan.stop] + 2  # per kept row: its first segment, after its marker
    out = bytearray().join([plan.header, *(data[i:j] for i, j in zip(first.tolist(), stop.tolist()))])
    moved = scan + np.cumsum(stop - first) - (stop - first) - first  # per kept row: output minus input offset
    np.frombuffer(out, np.uint8)[moved[plan.row] + bound[plan.kept] + 1] = plan.numbers  # renumbered, then EOI
    return out, plan.region


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to cut one box out of the JPEGs that share one header (the frames of a video share theirs)."""

    region: tuple[int, int, int, int]  # x, y, width, height of the cut image in the full one
    header: bytes | None  # the cut image's header (new size); None: the box needs the whole image
    markers: int = 0  # restart markers a valid full image has
    first: np.ndarray | None = None  # per kept row of blocks: index into the segment bounds of its first segment
    stop: np.ndarray | None = None  # ... and of the marker after its last kept segment
    row: np.ndarray | None = None  # per kept segment: its kept row
    kept: np.ndarray | None = None  # per kept segment: index of the bound (marker) that follows it
    numbers: np.ndarray | None = None  # the new second bytes of those markers (RST0..7 in turn, EOI last)


@functools.lru_cache(maxsize=256)
def _plan(header: bytes, box: Box) -> _Plan | None:
    parsed = _parse_header(header)
    if parsed is None:
        return None
    sof, _, width, height, mcu_w, mcu_h, margin_x, margin_y, interval = parsed
    per_row, rows = -(-width // mcu_w), -(-height // mcu_h)
    if interval <= 0 or per_row % interval:
        return None
    segments = per_row // interval  # per row of blocks
    span = mcu_w * interval  # pixels per restart segment
    # simplejpeg decodes widths that are a multiple of 32 pixels markedly faster (benchmarks/loader.py, jpeg)
    step = 32 // span if 32 % span == 0 else 1
    x0, y0, x1, y1 = box
    c0 = max(0, x0 - margin_x) // span // step * step
    c1 = min(segments, c0 + -(-(-(-(x1 + margin_x) // span) - c0) // step) * step)
    r0, r1 = max(0, y0 - margin_y) // mcu_h, min(rows, -(-(y1 + margin_y) // mcu_h))
    if (c0, c1, r0, r1) == (0, segments, 0, rows):
        return _Plan((0, 0, width, height), None)
    w, h = min(width, c1 * span) - c0 * span, min(height, r1 * mcu_h) - r0 * mcu_h
    cut = bytearray(header)
    cut[sof + 5 : sof + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    row = np.arange(r0, r1) * segments
    kept = (row[:, None] + np.arange(c0 + 1, c1 + 1)).ravel()
    numbers = (_RST + np.arange(len(kept)) % 8).astype(np.uint8)
    numbers[-1] = _EOI[1]
    return _Plan((c0 * span, r0 * mcu_h, w, h), bytes(cut), segments * rows - 1, row + c0, row + c1,
                 np.repeat(np.arange(r1 - r0), c1 - c0), kept, numbers)


_last_header: tuple[bytes, tuple[int, ...]] = (b"", ())  # the frames of one video share their header bytes


def _header(data: bytes) -> tuple[int, ...] | None:
    """(SOF offset, scan data offset, width, height, MCU width, MCU height, x and y margins, restart interval) of a
    sequential Huffman-coded JPEG with one scan of all components; None for anything else."""
    global _last_header
    known, parsed = _last_header
    if known and data.startswith(known):  # the same bytes up to the scan data: the same answer
        return parsed
    parsed = _parse_header(data)
    if parsed is not None:
        _last_header = (data[: parsed[1]], parsed)
    return parsed


def _parse_header(data: bytes) -> tuple[int, ...] | None:
    if data[:2] != b"\xff\xd8":
        return None
    i, sof, interval, n = 2, None, 0, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_SEQUENTIAL:
            sof = i
            if data[i + 4] != 8:  # 12-bit samples
                return None
            height, width, ncomp = (int.from_bytes(data[i + 5 : i + 7], "big"),
                                    int.from_bytes(data[i + 7 : i + 9], "big"), data[i + 9])
            factors = [(data[i + 11 + 3 * k] >> 4, data[i + 11 + 3 * k] & 15) for k in range(ncomp)]
        elif 0xC2 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return None  # progressive, lossless, arithmetic or hierarchical
        elif marker == 0xDD:
            interval = int.from_bytes(data[i + 4 : i + 6], "big")
        elif marker == 0xDA:
            if sof is None or data[i + 4] != ncomp or height == 0 or not factors:
                return None
            h_max, v_max = max(f[0] for f in factors), max(f[1] for f in factors)
            if ncomp == 1:  # a single-component scan codes 8×8 blocks, whatever the sampling factors
                h_max = v_max = 1
            # libjpeg-turbo's fancy upsampling blends each chroma sample with its neighbours: only the outermost
            # pixels of a cut image differ from the whole image's, so a box keeps one pixel away from a cut edge.
            margin_x, margin_y = int(h_max > 1), int(v_max > 1)
            return sof, i + 2 + length, width, height, 8 * h_max, 8 * v_max, margin_x, margin_y, interval
        i += 2 + length
    return None
