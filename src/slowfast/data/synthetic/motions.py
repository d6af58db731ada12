r"""The motion classes of the synthetic datasets: one table, and the trajectories each class draws.

A class is a *motion* of an object, never its appearance: colour, texture, shape, size, position and the
background are drawn independently of the class, so no single frame reveals it (paper §1: the categorical
semantics of a scene change slowly, motion is what the Fast pathway sees at high temporal resolution).

Aliased pairs (why SlowFast must beat Slow-only here)
-----------------------------------------------------
The Slow pathway samples a frame every :math:`\tau` frames of a video at :math:`r` fps, i.e. at the rate
:math:`f_s = r/\tau` (1.875 Hz for the default :math:`\tau=16`, :math:`r=30`); the Fast pathway samples every
:math:`\tau/\alpha = 2` frames (15 Hz). An oscillation :math:`x(t) = A\sin(2\pi f t + \varphi)` sampled by the Slow
pathway at :math:`t_k = t_0 + k/f_s` gives

.. math:: x_k = A \sin(2\pi f k / f_s + \psi), \qquad \psi = 2\pi f t_0 + \varphi .

* **Shift** :math:`f' = f + f_s`: :math:`2\pi f' k/f_s = 2\pi f k/f_s + 2\pi k`, so :math:`x'_k = A\sin(2\pi f k/f_s
  + \psi')` -- the same sequence as :math:`f` with phase :math:`\psi'`.
* **Reflection** :math:`f' = f_s - f`: :math:`A\sin(2\pi k - 2\pi f k/f_s + \psi') = A\sin(2\pi f k/f_s + \pi -
  \psi')` -- again the same form, with phase :math:`\pi - \psi'`.

The phase :math:`\varphi` is drawn uniformly from :math:`[0, 2\pi)` and independently of :math:`t_0`, so
:math:`\psi` is uniform as well, and both maps above send a uniform phase to a uniform phase: the *distribution* of
every Slow-pathway sample sequence is identical for :math:`f` and :math:`f'` (amplitudes share one prior too).
No model that sees only those samples can do better than chance on such a pair. At the Fast pathway's rate
(15 Hz, Nyquist 7.5 Hz) both frequencies are below Nyquist and distinct, so the pair is resolved. Frequencies are
stored as ``cycles_per_slow_step`` :math:`c = f / f_s`; a pair is :math:`(c, 1-c)` or :math:`(c, c+1)`.

The aliasing is exact for frames sampled every τ frames -- a Slow-only model fed T frames at stride τ, as
PySlowFast's ``SLOW_4x16`` config samples them. It does NOT hold for frame offsets that are not multiples of τ:
the SlowFast model takes its Slow frames from the Fast clip with PySlowFast's rule ``linspace(0, αT-1, T)`` rounded
down (for T=4, α=8: offsets 0, 20, 40, 62 frames instead of 0, 16, 32, 48), which separates these pairs -- harmless
there, since the Fast pathway sees them anyway, but a Slow-only *baseline* must sample at stride τ to be aliased.

Other classes: direction of vertical translation, expansion vs contraction, spinning vs rocking. Their per-frame
marginals are symmetric: trajectories are centred on the clip's middle, so a rising and a falling object cover the
same positions, a growing and a shrinking one the same sizes. Mirror-sensitive classes (left vs right, clockwise vs
counterclockwise) are deliberately absent: the paper's horizontal-flip augmentation would swap their labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["AVA_ACTIONS", "AVA_INTERACTIONS", "AVA_POSES", "MOTIONS", "Motion", "MotionInstance"]

Kind = Literal["still", "drift", "oscillate"]
Axis = Literal["x", "y", "scale", "angle", ""]
_COLUMN = {"x": 0, "y": 1, "scale": 2, "angle": 3}


@dataclass(frozen=True)
class Motion:
    """One motion class: a ``drift`` (constant rate) or an ``oscillate`` (sinusoid) of one pose ``axis`` -- x, y
    (pixels, y down), log-``scale`` or ``angle`` (radians, clockwise on screen). ``sign`` is the drift's direction,
    0 for a random one per instance; oscillation frequencies are ``cycles_per_slow_step`` × fps/τ."""

    name: str
    kind: Kind
    axis: Axis = ""
    sign: int = 1
    cycles_per_slow_step: float = 0.0
    aliases: str | None = None  # the class this one is indistinguishable from at the Slow pathway's stride τ


# The one table of classes. Order matters: a dataset with N classes uses the first N, so the aliased pairs come
# first. Every class is invariant under a horizontal flip (the training augmentation of paper §4): a flip maps a
# horizontal oscillation to one of the same frequency and leaves vertical motion, scale and "spinning in either
# sense" alone -- left/right drifts or a clockwise/counterclockwise pair would swap their labels under it.
MOTIONS: tuple[Motion, ...] = (
    Motion("swaying slowly", "oscillate", "x", cycles_per_slow_step=0.25),
    Motion("swaying quickly", "oscillate", "x", cycles_per_slow_step=0.75, aliases="swaying slowly"),  # 1 - 0.25
    Motion("bobbing slowly", "oscillate", "y", cycles_per_slow_step=0.3),
    Motion("bobbing quickly", "oscillate", "y", cycles_per_slow_step=1.3, aliases="bobbing slowly"),  # 0.3 + 1
    Motion("rising", "drift", "y", sign=-1),
    Motion("falling", "drift", "y", sign=1),
    Motion("growing", "drift", "scale", sign=1),
    Motion("shrinking", "drift", "scale", sign=-1),
    Motion("spinning", "drift", "angle", sign=0),
    Motion("rocking", "oscillate", "angle", cycles_per_slow_step=0.4),
)

# AVA-like actors: a "pose" action (exactly one at a time) and an optional "interaction" on top, as AVA's
# person-movement and object-interaction labels. Ids in the label map are the 1-based positions here.
AVA_POSES: tuple[Motion, ...] = (Motion("standing still", "still"), *MOTIONS[:4])
AVA_INTERACTIONS: tuple[Motion, ...] = (MOTIONS[8], MOTIONS[9])
AVA_ACTIONS: tuple[Motion, ...] = AVA_POSES + AVA_INTERACTIONS

# Ranges of the nuisance parameters: drift rates per second and oscillation amplitudes, per axis. Lengths are in
# units of the frame's short side. Spin stays below pi/2 per Slow step (0.53 s), so it is visible at the Slow rate
# for shapes symmetric under half a turn.
RATE = {"x": (0.15, 0.24), "y": (0.15, 0.24), "scale": (0.22, 0.38), "angle": (1.2, 2.4)}
AMPLITUDE = {"x": (0.12, 0.21), "y": (0.12, 0.21), "scale": (0.22, 0.38), "angle": (0.6, 1.05)}


@dataclass(frozen=True)
class MotionInstance:
    """A motion with its random nuisance parameters drawn: signed rate or amplitude, and phase."""

    motion: Motion
    rate: float
    phase: float

    @classmethod
    def draw(cls, motion: Motion, rng: np.random.Generator, *, short_side: float) -> MotionInstance:
        if motion.kind == "still":
            return cls(motion, 0.0, 0.0)
        low, high = (RATE if motion.kind == "drift" else AMPLITUDE)[motion.axis]
        size = short_side if motion.axis in ("x", "y") else 1.0
        sign = motion.sign or (1 if rng.integers(2) else -1)
        return cls(motion, sign * float(rng.uniform(low, high)) * size, float(rng.uniform(0.0, 2 * math.pi)))

    def offsets(self, t: np.ndarray, *, slow_rate: float) -> np.ndarray:
        """Offsets ``(len(t), 4)``: dx, dy (pixels), d log-scale, d angle (rad, clockwise) at times ``t`` (s).

        ``slow_rate`` is the Slow pathway's sampling rate fps/τ that oscillation frequencies are tied to. Drifts
        are linear in ``t``; callers centre ``t`` on the clip's middle for symmetric per-frame marginals.
        """
        t = np.asarray(t, dtype=np.float64)
        out = np.zeros((t.size, 4))
        m = self.motion
        if m.kind == "oscillate":
            freq = m.cycles_per_slow_step * slow_rate
            out[:, _COLUMN[m.axis]] = self.rate * np.sin(2 * math.pi * freq * t + self.phase)
        elif m.kind == "drift":
            out[:, _COLUMN[m.axis]] = self.rate * t
        return out
