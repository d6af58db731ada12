"""What a demo video shows and how much of the input it covers (``slowfast demo`` flags, the evaluate stages'
``demo`` sections of params.yaml)."""

from __future__ import annotations

import dataclasses

from slowfast.config import require


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What a demo draws and how much of the video it covers."""

    top_k: int = 3  # classes per segment / actions per box
    every: float = 1.0  # seconds per segment (AVA: between keyframes)
    threshold: float = 0.3  # AVA: least action score drawn on a box
    person_threshold: float | None = None  # person detector's box score threshold (default: its config's, 0.8)
    cam: bool = False  # Grad-CAM panels, one per pathway
    fps: float | None = None  # output frame rate (default: the input's)
    max_seconds: float | None = None  # only the first seconds of the video (evaluate stages: a short clip)
    max_side: int | None = None  # output panels' long side at most this many pixels (default: the input's size)

    def __post_init__(self) -> None:
        require(self.top_k >= 1, "top_k", f"got {self.top_k}, allowed: >= 1")
        require(0 < self.every <= 3600, "every", f"got {self.every}, allowed: 0 < seconds <= 3600")
        require(0 <= self.threshold <= 1, "threshold", f"got {self.threshold}, allowed: 0..1")
        require(self.person_threshold is None or 0 <= self.person_threshold < 1, "person_threshold",
                f"got {self.person_threshold}, allowed: 0 <= score < 1")
        require(self.fps is None or 0 < self.fps <= 240, "fps", f"got {self.fps}, allowed: 0 < fps <= 240")
        require(self.max_seconds is None or self.max_seconds > 0, "max_seconds",
                f"got {self.max_seconds}, allowed: > 0")
        require(self.max_side is None or 16 <= self.max_side <= 8192, "max_side",
                f"got {self.max_side}, allowed: 16..8192")
