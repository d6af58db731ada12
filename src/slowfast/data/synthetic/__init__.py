"""Embedded synthetic datasets: small Kinetics-, Charades- and AVA-like datasets whose classes are *motions*.

Deterministic and seeded (same parameters -> byte-identical annotation files and videos), written in the official
on-disk layouts and formats as real H.264 mp4 files, and published as archives behind a download manifest, so the
whole pipeline runs on them exactly as on the real datasets. Some class pairs differ only in the frequency of an
oscillation and alias at the Slow pathway's stride τ while the Fast pathway resolves them (see
:mod:`slowfast.data.synthetic.motions` for the maths). Parameters are one frozen dataclass per dataset, built from
mappings with :func:`slowfast.config.from_mapping`.
"""

from slowfast.data.synthetic.ava import AvaParams, generate_ava
from slowfast.data.synthetic.build import VideoParams
from slowfast.data.synthetic.charades import CharadesParams, generate_charades
from slowfast.data.synthetic.kinetics import KineticsParams, generate_kinetics
from slowfast.data.synthetic.motions import AVA_ACTIONS, MOTIONS, Motion, MotionInstance
from slowfast.data.synthetic.release import SyntheticParams, generate_all, publish

__all__ = [
    "AVA_ACTIONS",
    "MOTIONS",
    "AvaParams",
    "CharadesParams",
    "KineticsParams",
    "Motion",
    "MotionInstance",
    "SyntheticParams",
    "VideoParams",
    "generate_all",
    "generate_ava",
    "generate_charades",
    "generate_kinetics",
    "publish",
]
