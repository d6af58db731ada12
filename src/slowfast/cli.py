"""The ``slowfast`` console script.

Each subcommand lives next to the code it drives and exposes ``add_arguments(parser)`` and ``run(args) -> int``;
this table only names them, so ``slowfast --help`` stays fast (modules are imported when their command runs).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stats": ("slowfast.models.stats", "GFLOPs and parameter count of a preset, as one JSON object"),
    "presets": ("slowfast.models.presets", "list the model presets with their metadata"),
    "convert": ("slowfast.models.convert", "convert a PySlowFast / pytorchvideo / Caffe2 checkpoint"),
    "export": ("slowfast.models.export", "export a checkpoint to ONNX or TorchScript, checked against PyTorch"),
    "synthetic": ("slowfast.data.synthetic.release", "build and publish the embedded synthetic datasets"),
    "datasets": ("slowfast.data.catalog", "the shipped real-dataset manifests: files, download and shard sizes"),
    "params": ("slowfast.recipes", "write params.yaml for a real dataset: the paper's recipe scaled to your GPUs"),
    "decode": ("slowfast.data.decode", "decode a folder of videos once into Parquet frame shards"),
    "eval-ava": ("slowfast.metrics.ava", "AVA frame mAP@0.5 of a detections CSV, as the official evaluator"),
    "predict": ("slowfast.engine.predict", "top-5 classes of a video with a trained model"),
    "finetune": ("slowfast.engine.finetune", "fine-tune and evaluate on your own videos (folder / MMAction2 / "
                 "PySlowFast list)"),
    "demo": ("slowfast.visualize.demo", "re-encode a video with the model's labels / AVA boxes (and Grad-CAM)"),
}


def _module_exists(module_name: str) -> bool:
    """Whether the command's module is installed, without importing it or its parent packages (``find_spec`` of
    ``slowfast.models.stats`` would run ``slowfast/models/__init__.py``, i.e. import torch, for ``--help``)."""
    package, _, rest = module_name.partition(".")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return False
    parts = rest.split(".")
    return any(
        (Path(root, *parts).with_suffix(".py")).is_file() or Path(root, *parts, "__init__.py").is_file()
        for root in spec.submodule_search_locations
    )


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if _module_exists(spec[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slowfast", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = _available()
    argv = sys.argv[1:] if argv is None else argv
    # Import only the module of the command being run (and all of them for --help on the top level).
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            importlib.import_module(module_name).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    module = importlib.import_module(commands[args.command][0])
    from slowfast.utils.io import OutputError  # disk full, a folder locked by another writer: one line, exit 2

    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, OutputError) as exc:
        # Library errors are written to name what is wrong; show them without a traceback.
        if args.verbose:
            raise
        print(f"slowfast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
