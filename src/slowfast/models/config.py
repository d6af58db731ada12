"""The one configuration object of the SlowFast model family: every choice the paper ablates is a field.

Defaults are SlowFast 4x16, R50 (Table 1 of the paper): α = 8, β = 1/8, T = 4, T-conv laterals with a 5×1² kernel.
Build it from a plain mapping (params.yaml, checkpoint metadata) with ``slowfast.config.from_mapping``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slowfast.config import require

Arch = Literal["slowfast", "slow", "fast"]
Lateral = Literal["tconv", "tsample", "ttoc_sum", "ttoc_concat", "none"]
FastInput = Literal["rgb", "gray", "tdiff", "half_res"]
NonLocalMode = Literal["dot_product", "softmax"]

R50_DEPTHS = (3, 4, 6, 3)
R101_DEPTHS = (3, 4, 23, 3)


@dataclass(frozen=True)
class SlowFastConfig:
    """Architecture of a SlowFast, Slow-only or Fast-only network (Sec. 3 and Table 1 of the paper).

    Channel widths are the Slow pathway's (the Fast pathway has ``1/beta_inv`` of them); frame counts are
    ``slow_frames`` (T) for the Slow pathway and ``alpha * slow_frames`` (αT) for the Fast pathway.
    """

    arch: Arch = "slowfast"
    #: blocks in res2..res5; R50 = (3, 4, 6, 3), R101 = (3, 4, 23, 3).
    depths: tuple[int, int, int, int] = R50_DEPTHS
    #: conv1 output channels of the Slow pathway (64 in the paper); res2 has this bottleneck width.
    width: int = 64
    #: bottleneck expansion: a stage's output channels are ``expansion`` × its inner width.
    expansion: int = 4
    #: frame-rate ratio α between the Fast and the Slow pathway.
    alpha: int = 8
    #: channel ratio 1/β between the Slow and the Fast pathway.
    beta_inv: int = 8
    #: T, the frames the Slow pathway sees (the Fast pathway sees αT).
    slow_frames: int = 4
    #: Fast→Slow lateral connection (Table 5a).
    lateral: Lateral = "tconv"
    #: temporal kernel of the T-conv lateral (5 in the paper; 7 in PySlowFast's 8x8 R50 and pytorchvideo's r50).
    fusion_kernel: int = 5
    #: T-conv output channels = ``fusion_channel_ratio`` × Fast channels (2βC in the paper).
    fusion_channel_ratio: int = 2
    #: temporal kernel sizes of conv1, res2, res3, res4, res5 (Table 1: Slow 1,1,1,3,3; Fast 5,3,3,3,3).
    slow_temporal_kernels: tuple[int, int, int, int, int] = (1, 1, 1, 3, 3)
    fast_temporal_kernels: tuple[int, int, int, int, int] = (5, 3, 3, 3, 3)
    #: how many leading res4 blocks keep the temporal kernel (null = all). R101 "50_50" uses 6 in both pathways,
    #: i.e. the temporal kernels of an R50 res4 (PySlowFast ``NUM_BLOCK_TEMP_KERNEL``).
    slow_res4_temporal_blocks: int | None = None
    fast_res4_temporal_blocks: int | None = None
    #: res4 block indices of the (fused) Slow pathway followed by a non-local block (16x8 R101+NL: 6, 13, 20).
    nonlocal_blocks: tuple[int, ...] = ()
    #: spatio-temporal max-pool on the phi/g branches of the non-local blocks (1 = none).
    nonlocal_pool: tuple[int, int, int] = (1, 2, 2)
    nonlocal_mode: NonLocalMode = "dot_product"
    #: what the Fast pathway sees (Table 5c): RGB, gray-scale, time differences or half spatial resolution.
    fast_input: FastInput = "rgb"
    num_classes: int = 400
    dropout: float = 0.5
    #: multi-label head (Charades, AVA): sigmoid scores in eval mode; logits in training mode.
    multilabel: bool = False
    #: 2 = res5 with spatial stride 1 and dilation 2, as for AVA detection (res5 map twice as large).
    res5_dilation: int = 1
    #: channels of the input frames (3 for RGB).
    input_channels: int = 3
    #: zero-initialise the last BN of every residual branch (PySlowFast's ZERO_INIT_FINAL_BN default).
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        require(all(d >= 1 for d in self.depths), "depths", f"every stage needs >= 1 block, got {self.depths}")
        require(self.width >= 1, "width", f"must be >= 1, got {self.width}")
        require(self.expansion >= 1, "expansion", f"must be >= 1, got {self.expansion}")
        require(self.alpha >= 1, "alpha", f"the frame-rate ratio α must be an integer >= 1, got {self.alpha}")
        require(self.beta_inv >= 1, "beta_inv", f"1/β must be an integer >= 1, got {self.beta_inv}")
        require(self.slow_frames >= 1, "slow_frames", f"must be >= 1, got {self.slow_frames}")
        require(self.fusion_kernel >= 1 and self.fusion_kernel % 2 == 1, "fusion_kernel",
                f"must be an odd integer >= 1 (keeps T frames after the stride-α conv), got {self.fusion_kernel}")
        require(self.fusion_channel_ratio >= 1, "fusion_channel_ratio",
                f"must be >= 1, got {self.fusion_channel_ratio}")
        for key in ("slow_temporal_kernels", "fast_temporal_kernels"):
            kernels = getattr(self, key)
            require(all(k >= 1 and k % 2 == 1 for k in kernels), key,
                    f"temporal kernels must be odd integers >= 1 (no temporal downsampling), got {kernels}")
        for key in ("slow_res4_temporal_blocks", "fast_res4_temporal_blocks"):
            n = getattr(self, key)
            require(n is None or 0 <= n <= self.depths[2], key,
                    f"must be null or between 0 and the res4 depth {self.depths[2]}, got {n}")
        require(all(0 <= i < self.depths[2] for i in self.nonlocal_blocks), "nonlocal_blocks",
                f"res4 block indices must be in [0, {self.depths[2]}), got {self.nonlocal_blocks}")
        require(len(set(self.nonlocal_blocks)) == len(self.nonlocal_blocks), "nonlocal_blocks",
                f"indices must be distinct, got {self.nonlocal_blocks}")
        require(not self.nonlocal_blocks or self.arch != "fast", "nonlocal_blocks",
                "non-local blocks sit on the Slow pathway; arch 'fast' has none")
        require(all(p >= 1 for p in self.nonlocal_pool), "nonlocal_pool", f"must be >= 1, got {self.nonlocal_pool}")
        require(self.num_classes >= 1, "num_classes", f"must be >= 1, got {self.num_classes}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.res5_dilation in (1, 2), "res5_dilation", f"allowed: 1, 2; got {self.res5_dilation}")
        require(self.input_channels >= 1, "input_channels", f"must be >= 1, got {self.input_channels}")
        require(self.fast_input != "gray" or self.input_channels == 3, "fast_input",
                f"'gray' converts RGB frames; needs input_channels 3, got {self.input_channels}")
        require(self.fast_input == "rgb" or self.arch != "slow", "fast_input",
                f"{self.fast_input!r} changes the Fast pathway's input; arch 'slow' has no Fast pathway")
        if self.arch != "slow":
            require(self.width % self.beta_inv == 0, "beta_inv",
                    f"1/β = {self.beta_inv} must divide the Slow widths (width = {self.width}); "
                    f"allowed: divisors of {self.width}")
        if self.arch == "slowfast" and self.lateral == "ttoc_sum":
            require(self.alpha == self.beta_inv, "lateral",
                    f"'ttoc_sum' adds αβC = {self.alpha}·C/{self.beta_inv} channels onto the Slow pathway's C: "
                    f"needs alpha == beta_inv (got alpha={self.alpha}, beta_inv={self.beta_inv}); use 'ttoc_concat'")

    @property
    def fast_frames(self) -> int:
        """αT, the frames of the Fast pathway."""
        return self.alpha * self.slow_frames

    @property
    def pathways(self) -> tuple[str, ...]:
        """Names of the pathways, Slow first (the order of the model's input list)."""
        return {"slowfast": ("slow", "fast"), "slow": ("slow",), "fast": ("fast",)}[self.arch]

    def pathway_width(self, pathway: str) -> int:
        """conv1 channels of a pathway: ``width`` for Slow, ``width / beta_inv`` for Fast."""
        return self.width if pathway == "slow" else self.width // self.beta_inv

    def pathway_frames(self, pathway: str) -> int:
        return self.slow_frames if pathway == "slow" else self.fast_frames
