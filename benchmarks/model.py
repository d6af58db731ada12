"""CPU throughput and peak memory of the SlowFast models: eager vs optimized inference, and a training step.

All modes of a preset run on the same weights (same seed) and the same input, side by side in one run: their steps
are interleaved round-robin in one child process and the median time per step is reported, so a change of machine
load (this machine is shared) hits every mode alike. The modes:

- ``eager``: ``model.eval()`` under ``torch.no_grad()``;
- ``folded``: ``slowfast.models.optimize.optimize_for_inference(model)``: BN folded into the convs, inference mode;
- ``folded_cl``: the same with channels-last-3d weights and inputs;
- ``compiled`` (only with ``--compile``; compiling takes tens of seconds): ``folded`` through ``torch.compile``;
  for these, the max |difference| of the outputs to the eager logits is reported;
- ``onnxruntime``: the model exported by ``slowfast export`` (:func:`slowfast.models.export.export_onnx`, one clip
  in) run by ONNX Runtime's CPU provider with ``--threads`` intra-op threads; the max |difference| to the eager
  logits is reported. The export (tens of seconds) happens once per preset, before timing;
- ``train``: one SGD step (forward, cross-entropy, backward, update) in training mode.

Memory: each mode then runs two steps alone in a fresh child process, which reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the growth of that peak over its value after building the
model(s) and inputs (roughly what the forward/backward passes need on top of the weights).

On a busy machine use ``--threads 1``: with more threads than free cores, OpenMP's waiting between the many small
ops dominates and the timings measure the machine's load rather than the model.

    python benchmarks/model.py [--presets slowfast_tiny slowfast_4x16_r50] [--size 112] [--batch 2] [--iters 5]
                               [--threads 2] [--compile] [--no-onnx] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import resource
import statistics
import sys
import time
from typing import Any

MODES = ("eager", "folded", "folded_cl", "onnxruntime", "train")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _runners(preset: str, modes: list[str], *, size: int, batch: int, seed: int, threads: int = 1,
             onnx_dir: str | None = None) -> tuple[dict[str, Any], Any]:
    """One callable per mode, all built from the same weights and fed the same clip; plus a check function."""
    import copy
    import os

    import torch

    from slowfast.models import create_model, pack_pathways
    from slowfast.models.optimize import optimize_for_inference

    torch.manual_seed(seed)
    model = create_model(preset).eval()
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, cfg.input_channels, cfg.pathway_frames(cfg.pathways[-1]), size, size, generator=g)
    x = pack_pathways(clip, cfg)  # the Slow pathway's T frames are taken from the clip, as at inference
    target = torch.randint(0, cfg.num_classes, (batch,), generator=g)
    runners: dict[str, Any] = {}
    for mode in modes:
        if mode == "eager":
            def eager() -> Any:
                with torch.no_grad():
                    return model(x)
            runners[mode] = eager
        elif mode == "train":
            trained = copy.deepcopy(model).train()  # its SGD steps must not change the others' weights
            opt = torch.optim.SGD(trained.parameters(), lr=0.01, momentum=0.9)

            def train_step() -> None:
                loss = torch.nn.functional.cross_entropy(trained(x), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            runners[mode] = train_step
        elif mode == "onnxruntime":
            import onnxruntime

            from slowfast.models.export import export_onnx

            path = os.path.join(onnx_dir or ".", f"{preset}-{size}.onnx")
            if not os.path.exists(path):  # the same weights (seed) in every child: export once per preset
                export_onnx(model, path, size=size)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            feed = {"clip": clip.numpy()}
            runners[mode] = lambda session=session: torch.from_numpy(session.run(None, feed)[0])
        else:
            fast = optimize_for_inference(model, channels_last=(mode == "folded_cl"), compile=(mode == "compiled"))
            runners[mode] = lambda fast=fast: fast(x)

    def max_abs_diff(mode: str) -> float:
        with torch.no_grad():
            return (runners[mode]() - model(x)).abs().max().item()

    return runners, max_abs_diff


def time_modes(preset: str, modes: list[str], *, size: int, batch: int, iters: int, warmup: int, threads: int,
               seed: int = 0, onnx_dir: str | None = None) -> dict[str, dict[str, Any]]:
    """Median time per step of every mode, the modes interleaved round-robin in one process so that a change
    of machine load hits all of them alike."""
    import torch

    torch.set_num_threads(threads)
    runners, max_abs_diff = _runners(preset, modes, size=size, batch=batch, seed=seed, threads=threads,
                                     onnx_dir=onnx_dir)
    for _ in range(warmup):
        for run_step in runners.values():
            run_step()
    samples: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(iters):
        for mode, run_step in runners.items():
            start = time.perf_counter()
            run_step()
            samples[mode].append(time.perf_counter() - start)
    out = {}
    for mode in modes:
        sec = statistics.median(samples[mode])
        out[mode] = {"clips_per_s": batch / sec, "ms_per_iter": 1000 * sec}
        if mode not in ("eager", "train"):
            out[mode]["max_abs_diff"] = max_abs_diff(mode)
    return out


def peak_memory(preset: str, mode: str, *, size: int, batch: int, threads: int, seed: int = 0,
                onnx_dir: str | None = None) -> dict[str, float]:
    """Peak RSS of a fresh process running two steps of one mode, and its growth over the RSS after set-up."""
    import torch

    torch.set_num_threads(threads)
    runners, _ = _runners(preset, [mode], size=size, batch=batch, seed=seed, threads=threads, onnx_dir=onnx_dir)
    base = _rss_mb()
    for _ in range(2):
        runners[mode]()
    return {"peak_rss_mb": _rss_mb(), "rss_growth_mb": _rss_mb() - base}


def _in_child(fn: Any, *args: Any, **kwargs: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import tempfile

    modes = list(MODES) + (["compiled"] if args.compile else [])
    if args.no_onnx:
        modes.remove("onnxruntime")
    rows = []
    with tempfile.TemporaryDirectory(prefix="slowfast-bench-") as onnx_dir:
        for preset in args.presets:
            common = {"size": args.size, "batch": args.batch, "threads": args.threads}
            times = _in_child(time_modes, preset, modes, iters=args.iters, warmup=args.warmup, onnx_dir=onnx_dir,
                              **common)
            for mode in modes:
                # A fresh process per mode, so that each peak RSS is that mode's own.
                memory = _in_child(peak_memory, preset, mode, onnx_dir=onnx_dir, **common)
                row = {"preset": preset, "mode": mode, **common, "iters": args.iters, **times[mode], **memory}
                row["speedup_vs_eager"] = row["clips_per_s"] / times["eager"]["clips_per_s"]
                rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = [("preset", "preset", "{}"), ("size", "size", "{}"), ("batch", "batch", "{}"), ("mode", "mode", "{}"),
            ("clips/s", "clips_per_s", "{:.2f}"), ("ms/iter", "ms_per_iter", "{:.1f}"),
            ("x eager", "speedup_vs_eager", "{:.2f}"), ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
            ("RSS growth MB", "rss_growth_mb", "{:.0f}"), ("max|diff|", "max_abs_diff", "{:.1e}")]
    table = [[c[0] for c in cols]]
    for r in rows:
        table.append([fmt.format(r[key]) if key in r else "-" for _, key, fmt in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = [" | ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["slowfast_tiny", "slowfast_4x16_r50"])
    parser.add_argument("--size", type=int, default=112, help="spatial size of the clips (default 112)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per mode (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations before timing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (needs a C++ compiler)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime mode (no export extra)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    for key in ("size", "batch", "iters", "threads"):
        if getattr(args, key) < 1 or (key == "size" and args.size < 32):
            parser.error(f"--{key}: must be >= {32 if key == 'size' else 1}, got {getattr(args, key)}")
    from slowfast.config import ConfigError
    from slowfast.models import get_preset

    for name in args.presets:
        try:
            get_preset(name)  # unknown names fail before any work
        except ConfigError as exc:
            parser.error(str(exc))
    rows = run(args)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
