"""Class names of the datasets the model zoos were trained on, shipped as package data.

Index ``i`` of a list is output ``i`` of a model trained on that dataset. The lists are facts taken from public files:

- ``kinetics400.txt``: PySlowFast's ``demo/Kinetics/kinetics_400_labels.csv`` (ids 0..399), which is also the
  index order of pytorchvideo's ``kinetics_classnames.json``: the 400 names of the Kinetics-400 annotation CSVs
  sorted alphabetically (``"passing American football ..."`` keeps its capital A; it sorts the same either way).
  PySlowFast and pytorchvideo model-zoo Kinetics-400 checkpoints index their classes in this order.
- ``kinetics600.txt``: the 600 Kinetics-600 names in the same alphabetical order (the classes of the Kinetics-600
  CSVs; some K-400 names were renamed there, e.g. ``changing wheel (not on bike)``, ``dyeing hair``).
- ``ava_v2.2.pbtxt``: the full AVA action list, ids 1..80 (PySlowFast ``demo/AVA/ava.names`` is this list in id
  order); ``ava_v2.2_activitynet_2019.pbtxt``: the 60 classes of the ActivityNet 2019 evaluation (the subset the
  paper, PySlowFast and MMAction2 train and evaluate on, Sec. 6). AVA v2.1 and v2.2 share the action list and the
  60-class subset (``ava_action_list_v2.1_for_activitynet_2018.pbtxt`` names the same ids).

An AVA model's outputs follow its label map's order (ascending ids in the official files), as
:class:`slowfast.data.sources.AvaSource` reads it; a 60-output model uses the 60-class map.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

#: name -> (file, number of classes)
LABEL_SETS: dict[str, tuple[str, int]] = {
    "kinetics400": ("kinetics400.txt", 400),
    "kinetics600": ("kinetics600.txt", 600),
    "ava": ("ava_v2.2_activitynet_2019.pbtxt", 60),
    "ava80": ("ava_v2.2.pbtxt", 80),
}


def builtin_classes(name: str) -> list[str]:
    """The class names of label set ``name`` (see :data:`LABEL_SETS`), in model output order."""
    if name not in LABEL_SETS:
        raise ValueError(f"classes: unknown label set {name!r}; allowed: {', '.join(LABEL_SETS)} or a file")
    file_name, count = LABEL_SETS[name]
    with resources.as_file(resources.files(__name__) / file_name) as path:
        names = read_class_file(path)
    if len(names) != count:  # the package data itself is broken
        raise ValueError(f"package label set {name}: {len(names)} names, expected {count}")
    return names


def infer_label_set(num_classes: int) -> str | None:
    """The label set with exactly ``num_classes`` classes, or None (none, or not unambiguous)."""
    matches = [name for name, (_, count) in LABEL_SETS.items() if count == num_classes]
    return matches[0] if len(matches) == 1 else None


def read_class_file(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a file: ``.json`` (a list of names), ``.pbtxt`` (an AVA label map: names by ascending id),
    ``.csv`` (``id,name`` rows with a header, as PySlowFast's demo files) or text (one name per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list {path} does not exist")
    if path.suffix == ".pbtxt":
        from slowfast.data.formats.ava import read_label_map

        label_map = read_label_map(path)
        return [label_map[i] for i in sorted(label_map)]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            names = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: expected a JSON list of class names")
        return names
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if path.suffix == ".csv":
        rows = [line.split(",", 1) for line in lines[1:]]
        if not all(len(r) == 2 and r[0].isdigit() for r in rows) or [int(r[0]) for r in rows] != list(range(len(rows))):
            raise ValueError(f"{path}: expected a header and 'id,name' rows with ids 0, 1, 2, ...")
        return [r[1].strip('"') for r in rows]
    return lines
