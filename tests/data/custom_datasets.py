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
from slowfast.data.synthetic.render import Track, draw_frames, random_background, random_sprite
from tests.data.videos import encode_frames

#: containers and codecs the datasets mix (suffix, codec); every one PyAV writes and reads here
CONTAINERS = ((".mp4", "libx264"), (".mkv", "libx264"), (".avi", "mpeg4"), (".mov", "mjpeg"), (".webm", "libvpx-vp9"))


def motion_frames(name: str, seed: int, *, width: int = 80, height: int = 64, seconds: float = 2.4,
                  fps: int = 30) -> list[np.ndarray]:
    """The frames of one object performing motion ``name`` of the motion table."""
    motion = next(m for m in MOTIONS if m.name == name)
    rng = np.random.default_rng(seed)
    n = round(seconds * fps)
    t = (np.arange(n) - (n - 1) / 2) / fps
    short = min(width, height)
    background = random_background(rng, height, width)
    sprite = random_sprite(rng, short_side=short, background=background, size=(0.25, 0.3))
    instance = MotionInstance.draw(motion, rng, short_side=short)
    track = Track(sprite, place(rng, sprite, instance.offsets(t, slow_rate=fps / 16), width, height))
    return list(draw_frames(background, [track], n))


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
