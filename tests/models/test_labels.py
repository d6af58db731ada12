"""Real class names: the shipped Kinetics/AVA lists, stored by `slowfast convert --classes`, used by `predict`."""

from __future__ import annotations

import json

import pytest

from slowfast.cli import main
from slowfast.data.formats.ava import read_label_map
from slowfast.data.labels import LABEL_SETS, builtin_classes, infer_label_set, read_class_file
from slowfast.models.checkpoint import read_checkpoint, read_class_names, save_model
from slowfast.models import create_model
from slowfast.tracking.models import load_local
from tests.data.videos import make_video
from tests.models.test_convert import REDUCED_DEPTHS, WIDTH, ptv, reference_slowfast, write_hub  # noqa: F401


@pytest.mark.parametrize("name, count", [("kinetics400", 400), ("kinetics600", 600), ("ava", 60), ("ava80", 80)])
def test_each_shipped_label_set_has_its_datasets_number_of_distinct_classes(name, count):
    names = builtin_classes(name)
    assert len(names) == count and len(set(names)) == count
    assert all(n == n.strip() and n for n in names)


@pytest.mark.parametrize("name", ["kinetics400", "kinetics600"])
def test_kinetics_lists_are_in_the_model_zoos_alphabetical_index_order(name):
    names = builtin_classes(name)
    assert names == sorted(names, key=str.lower)
    assert names[0] == "abseiling" and names[-1] == "zumba"


def test_kinetics400_indices_of_pyslowfast_demo_labels_csv():
    # Spot checks against PySlowFast's demo/Kinetics/kinetics_400_labels.csv ("id,name" rows).
    names = builtin_classes("kinetics400")
    assert names[5] == "archery" and names[161] == "hurling (sport)" and names[209] == (
        "passing American football (not in game)") and names[398] == "yoga"


def test_ava_60_class_subset_is_the_activitynet_2019_ids_of_the_80_class_list():
    full = read_label_map(LABEL_SETS_PATH("ava80"))
    subset = read_label_map(LABEL_SETS_PATH("ava"))
    assert list(full) == list(range(1, 81))
    assert set(subset) <= set(full) and all(full[i] == subset[i] for i in subset)
    # The 20 classes with too few validation examples that the ActivityNet 2019 evaluation drops.
    assert sorted(set(full) - set(subset)) == [2, 16, 18, 19, 21, 23, 25, 31, 32, 33, 35, 39, 40, 42, 44, 50, 53,
                                               55, 71, 75]
    assert list(subset) == sorted(subset)  # output order = ascending ids


def LABEL_SETS_PATH(name):  # noqa: N802 - reads like the constant it indexes
    from importlib import resources

    return resources.files("slowfast.data.labels") / LABEL_SETS[name][0]


def test_label_set_is_inferred_only_when_one_has_that_many_classes():
    assert [infer_label_set(n) for n in (400, 600, 60, 80, 3)] == ["kinetics400", "kinetics600", "ava", "ava80",
                                                                    None]


def test_class_files_of_every_supported_format_read_the_same_names(tmp_path):
    names = ["a b", "c,d", "e"]
    (tmp_path / "c.json").write_text(json.dumps(names))
    (tmp_path / "c.txt").write_text("a b\nc,d\n\ne\n")
    (tmp_path / "c.csv").write_text("id,name\n0,a b\n1,c,d\n2,e\n")
    (tmp_path / "c.pbtxt").write_text("".join(f'item {{ name: "{n}" id: {i} }}\n' for i, n in ((9, "e"), (1, "a b"),
                                                                                            (4, "c,d"))))
    for suffix in ("json", "txt", "csv", "pbtxt"):
        assert read_class_file(tmp_path / f"c.{suffix}") == names, suffix


def test_names_stored_in_a_checkpoint_win_over_a_classes_json_beside_it(tmp_path):
    path = save_model(create_model("slowfast_tiny", num_classes=3), tmp_path / "model.pt",
                      meta={"classes": ["x", "y", "z"]})
    (tmp_path / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    assert read_class_names(path, 3) == ["x", "y", "z"]
    assert load_local(path).classes == ["x", "y", "z"]
    bare = save_model(create_model("slowfast_tiny", num_classes=3), tmp_path / "bare" / "model.pt")
    (tmp_path / "bare" / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    assert read_class_names(bare, 3) == ["a", "b", "c"]
    (tmp_path / "bare" / "classes.json").unlink()
    assert read_class_names(bare, 3) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="expected a list of 4 class names"):
        read_class_names(path, 4)


def test_convert_infers_kinetics400_names_and_predict_reads_them(ptv, tmp_path, capsys):  # noqa: F811
    hub = write_hub(reference_slowfast(ptv, num_classes=400), tmp_path / "k400.pyth")
    out = tmp_path / "converted" / "model.pt"
    sets = [f"--set=depths={list(REDUCED_DEPTHS)}", f"--set=width={WIDTH}"]
    assert main(["convert", "--from", "pytorchvideo", "--preset", "slowfast_8x8_r50", *sets, str(hub), str(out)]) == 0
    meta = read_checkpoint(out)["meta"]
    assert meta["classes"] == builtin_classes("kinetics400") and meta["classes_from"] == "kinetics400"
    resolved = load_local(out)
    assert resolved.classes[0] == "abseiling" and len(resolved.classes) == 400
    # `slowfast predict` on a real encoded video names its top classes with the stored Kinetics names.
    video = make_video(tmp_path / "clip.mp4", width=64, height=48, num_frames=90)
    capsys.readouterr()
    assert main(["predict", str(video), "--checkpoint", str(out), "--json", "--clips", "1", "--crops", "1",
                 "--top", "3"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert len(top) == 3 and all(t["class"] in resolved.classes for t in top)
    assert not any(t["class"].isdigit() for t in top)


def test_convert_with_a_label_set_of_the_wrong_size_fails_naming_the_flag(ptv, tmp_path, capsys):  # noqa: F811
    hub = write_hub(reference_slowfast(ptv, num_classes=7), tmp_path / "k7.pyth")
    sets = [f"--set=depths={list(REDUCED_DEPTHS)}", f"--set=width={WIDTH}"]
    out = tmp_path / "m.pt"
    assert main(["convert", "--from", "pytorchvideo", "--preset", "slowfast_8x8_r50", *sets, "--classes",
                 "kinetics400", str(hub), str(out)]) == 2
    err = capsys.readouterr().err
    assert "--classes: kinetics400 has 400 classes, the checkpoint's classifier 7" in err and not out.exists()
    assert main(["convert", "--from", "pytorchvideo", "--preset", "slowfast_8x8_r50", *sets, "--classes",
                 "kinetics4000", str(hub), str(out)]) == 2
    assert "neither a label set" in capsys.readouterr().err
    names = tmp_path / "seven.txt"
    names.write_text("\n".join(f"class {i}" for i in range(7)))
    assert main(["convert", "--from", "pytorchvideo", "--preset", "slowfast_8x8_r50", *sets, "--classes",
                 str(names), str(hub), str(out)]) == 0
    assert read_class_names(out, 7) == [f"class {i}" for i in range(7)]
