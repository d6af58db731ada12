"""Publishing the embedded synthetic datasets behind a download manifest, exactly as a real dataset is published.

:func:`publish` builds the three datasets, packs each into a reproducible ``.tar.gz`` (sorted members, zero
timestamps and owners, so the same parameters give the same bytes and the same sha256) and writes the
``manifest.json`` that :func:`slowfast.data.download.load_manifest` reads::

    {"version": 1, "items": [{"name": "synthetic-kinetics", "url": "kinetics.tar.gz",
                              "size": ..., "sha256": "...", "dest": "kinetics.tar.gz", "extract": true}, ...]}

An archive holds its dataset under one top-level directory (``kinetics/``, ``charades/``, ``ava/``), and the
downloader extracts an archive beside itself, so ``download_manifest(manifest, data_dir)`` yields
``data_dir/kinetics/annotations/train.csv`` and so on -- the official layouts the sources read. URLs are relative
to the manifest's folder (the downloader resolves them), so the manifest's bytes do not depend on where the
repository is cloned.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slowfast.config import from_mapping
from slowfast.data.synthetic.ava import AvaParams, generate_ava
from slowfast.data.synthetic.build import STAMP_NAME
from slowfast.data.synthetic.charades import CharadesParams, generate_charades
from slowfast.data.synthetic.kinetics import KineticsParams, generate_kinetics
from slowfast.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class SyntheticParams:
    """The three embedded datasets' parameters (one section each)."""

    kinetics: KineticsParams = field(default_factory=KineticsParams)
    charades: CharadesParams = field(default_factory=CharadesParams)
    ava: AvaParams = field(default_factory=AvaParams)


def generators(params: SyntheticParams) -> dict[str, tuple[Callable[..., Path], Any]]:
    """Dataset name -> (generator, its parameters)."""
    return {
        "kinetics": (generate_kinetics, params.kinetics),
        "charades": (generate_charades, params.charades),
        "ava": (generate_ava, params.ava),
    }


def generate_all(
    out_dir: str | os.PathLike[str], params: SyntheticParams | None = None, *, workers: int = 1
) -> dict[str, Path]:
    """Build every dataset under ``out_dir/<name>`` (each a no-op when already built); returns name -> root."""
    params = params or SyntheticParams()
    return {
        name: generate(Path(out_dir) / name, p, workers=workers) for name, (generate, p) in generators(params).items()
    }


def write_tar_gz(source: str | os.PathLike[str], archive: str | os.PathLike[str], *, arcname: str) -> None:
    """Pack ``source`` as ``arcname/...`` into a byte-reproducible gzip'd tar, atomically (the stamp file stays out)."""
    source = Path(source)
    paths = [source] + sorted(p for p in source.rglob("*") if p.name != STAMP_NAME)
    with atomic_path(archive) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in paths:
                    if path.is_symlink() or not (path.is_dir() or path.is_file()):
                        raise ValueError(f"{path}: only regular files and directories are packed")
                    rel = path.relative_to(source).as_posix()
                    info = tarfile.TarInfo(arcname if rel == "." else f"{arcname}/{rel}")
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    if path.is_dir():
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                    else:
                        info.size, info.mode = path.stat().st_size, 0o644
                        with open(path, "rb") as fh:
                            tar.addfile(info, fh)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish(out_dir: str | os.PathLike[str], params: SyntheticParams | None = None, *, workers: int = 1) -> Path:
    """Build, pack and list the synthetic datasets in ``out_dir``; returns the path of ``manifest.json``.

    ``out_dir/build/<name>/`` keeps each built dataset (so a re-run with the same parameters only re-packs, which
    gives the same bytes), ``out_dir/<name>.tar.gz`` the archives.
    """
    out_dir = Path(out_dir).resolve()
    roots = generate_all(out_dir / "build", params, workers=workers)
    items = []
    for name, root in roots.items():
        archive = out_dir / f"{name}.tar.gz"
        write_tar_gz(root, archive, arcname=name)
        items.append(
            {
                "name": f"synthetic-{name}",
                "url": archive.name,  # relative: resolved against the manifest's folder on download
                "size": archive.stat().st_size,
                "sha256": _sha256(archive),
                "dest": archive.name,
                "extract": True,
            }
        )
        log.info("packed %s (%d bytes)", archive, items[-1]["size"])
    manifest = out_dir / MANIFEST_NAME
    write_json_atomic(manifest, {"version": 1, "items": items})
    return manifest


# -- `slowfast synthetic` (for the CLI table: ``"synthetic": ("slowfast.data.synthetic.release", ...)``) ----------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="where to write build/, the .tar.gz archives and manifest.json")
    parser.add_argument("--params", help="YAML or JSON file with a SyntheticParams mapping (kinetics/charades/ava)")
    parser.add_argument("--workers", type=int, default=1, help="processes that render and encode videos")


def run(args: argparse.Namespace) -> int:
    params = SyntheticParams()
    if args.params:
        text = Path(args.params).read_text(encoding="utf-8")
        mapping = json.loads(text) if args.params.endswith(".json") else yaml.safe_load(text)
        params = from_mapping(SyntheticParams, mapping)
    print(publish(args.out_dir, params, workers=args.workers))
    return 0
