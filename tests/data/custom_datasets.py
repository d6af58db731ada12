"""Users' own datasets built for the tests: real encoded videos in each layout ``CustomSource`` reads.

``motion_video`` renders a clip whose class is only its motion (``slowfast.data.synthetic.motions``: one object
rising or falling over a random background, random shape, colours, size and place), so a model can only tell the
classes apart by learning motion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slowfast.data.synthetic.build import place
from slowfast.data.synthetic.motions import MOTIONS, MotionInstance
from slowfast.data.synthetic.render import Track, draw_frames, random_sprite
from tests.data.videos import encode_frames

#: containers and codecs the datasets mix (suffix, codec); every one PyAV writes and reads here
CONTAINERS = ((".mp4", "libx264"), (".mkv", "libx264"), (".avi", "mpeg4"), (".mov", "mjpeg"), (".webm", "libvpx-vp9"))


def motion_frames(name: str, seed: int, *, width: int = 80, height: int = 64, seconds: float = 2.4,
                  fps: int = 30, objects: int = 3) -> list[np.ndarray]:
    """The frames of ``objects`` objects that all perform motion ``name`` of the motion table, each with its own
    shape, colours, size, place and draw of the rate (one object alone lets a tiny model memorise appearance:
    README, "Embedded default")."""
    motion = next(m for m in MOTIONS if m.name == name)
    rng = np.random.default_rng(seed)
    n = round(seconds * fps)
    t = (np.arange(n) - (n - 1) / 2) / fps
    short = min(width, height)
    # a flat background of a random colour: the clip holds the moving objects and nothing else to learn from
    background = np.broadcast_to(rng.uniform(0, 255, size=3).astype(np.float32), (height, width, 3)).copy()
    tracks = []
    for _ in range(objects):
        sprite = random_sprite(rng, short_side=short, background=background, size=(0.15, 0.22))
        instance = MotionInstance.draw(motion, rng, short_side=short)
        tracks.append(Track(sprite, place(rng, sprite, instance.offsets(t, slow_rate=fps / 16), width, height)))
    return list(draw_frames(background, tracks, n))


def motion_video(path: Path, name: str, seed: int, *, codec: str = "libx264", fps: int = 30, **size) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode_frames(path, motion_frames(name, seed, fps=fps, **size), codec=codec, rate=fps)


def motion_folder(root: Path, *, per_class: int, classes: dict[str, str], seed: int = 0,
                  mixed: bool = True) -> dict[str, list[str]]:
    """``root/<folder>/<video>`` for each ``{folder name: motion name}``; videos cycle through :data:`CONTAINERS`
    (``mixed``) and two frame rates. Returns ``{folder: [relative paths]}``."""
    out: dict[str, list[str]] = {}
    for c, (folder, motion) in enumerate(sorted(classes.items())):
        out[folder] = []
        for i in range(per_class):
            suffix, codec = CONTAINERS[(i + c) % len(CONTAINERS)] if mixed else CONTAINERS[0]
            fps = 30 if i % 3 else 25
            rel = f"{folder}/clip {i:02d}{suffix}"
            motion_video(root / rel, motion, seed * 1000 + c * 100 + i, codec=codec, fps=fps)
            out[folder].append(rel)
    return out


#: the user's own AVA-style label map: five classes with ids of its own choosing (the synthetic poses 1..5)
CUSTOM_AVA_LABELS = {10: "stand", 20: "sway slowly", 30: "sway quickly", 40: "bob slowly", 50: "bob quickly"}


def custom_ava(root: Path, *, train_videos: int = 1, val_videos: int = 1, duration_sec: int = 8) -> dict[str, Path]:
    """An AVA-style set of one's own: the synthetic AVA movies stored whole (keyframe timestamps are seconds of the
    file, 2 .. duration-2, not AVA's 902..1798), every other keyframe kept, the five pose classes under the ids of
    :data:`CUSTOM_AVA_LABELS`, files under names of one's own, and ground-truth person boxes as imported proposals.
    Returns the files relative to ``root`` (for ``ava.files``) and the proposals path."""
    from slowfast.data.formats.ava import read_ava_csv, read_exclusions, write_ava_csv, write_label_map
    from slowfast.data.synthetic.ava import AvaParams, generate_ava

    official = root.parent / f"{root.name}-official"
    generate_ava(official, AvaParams(train_videos=train_videos, val_videos=val_videos, duration_sec=duration_sec))
    (root / "movies").mkdir(parents=True)
    for video in sorted((official / "videos_15min").iterdir()):
        video.rename(root / "movies" / video.name)
    files: dict[str, Path] = {"label_map": Path("labels.pbtxt"), "videos": Path("movies")}
    for split in ("train", "val"):
        boxes = read_ava_csv(official / "annotations" / f"ava_{split}_v2.2.csv")
        boxes = boxes[(boxes["action_id"] <= 5) & (boxes["timestamp"] % 2 == 0)]
        boxes = boxes.assign(timestamp=boxes["timestamp"] - 900, action_id=boxes["action_id"] * 10)
        write_ava_csv(boxes, root / "boxes" / f"{split}.csv")
        files[split] = Path("boxes") / f"{split}.csv"
        excluded = read_exclusions(official / "annotations" / f"ava_{split}_excluded_timestamps_v2.2.csv")
        (root / "boxes" / f"{split}_excluded.csv").write_text(
            "".join(f"{vid},{ts - 900}\n" for vid, ts in sorted(excluded)))
        files[f"excluded_{split}"] = Path("boxes") / f"{split}_excluded.csv"
        if split == "val":
            people = boxes.drop_duplicates(["video_id", "timestamp", "person_id"])
            proposals = people.assign(action_id=-1, score=0.95)[
                ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score"]]
            write_ava_csv(proposals, root / "proposals.csv")
    write_label_map(CUSTOM_AVA_LABELS, root / "labels.pbtxt")
    return {**files, "proposals": Path("proposals.csv")}
