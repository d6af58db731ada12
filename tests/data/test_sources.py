"""Dataset sources over the official layouts: the right videos are listed, annotations are exposed per split, and
no path from an annotation file or a symbolic link escapes the dataset root."""

from __future__ import annotations

import os

import pytest

from slowfast.data.formats.ava import write_label_map
from slowfast.data.formats.charades import CharadesAction, CharadesVideo, write_charades_classes, write_charades_csv
from slowfast.data.formats.kinetics import KineticsClip, write_kinetics_csv
from slowfast.data.sources import AvaSource, CharadesSource, KineticsSource


def _touch(path, data=b"\x00\x00\x00\x18ftypmp42"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def kinetics_root(tmp_path):
    root = tmp_path / "k400"
    write_kinetics_csv(
        [KineticsClip("b class", "aaaaaaaaaaa", 1, 11, "train"), KineticsClip("a class", "bbbbbbbbbbb", 5, 15, "train"),
         KineticsClip("missing video", "ccccccccccc", 0, 10, "train")],
        root / "annotations" / "train.csv",
    )  # fmt: skip
    write_kinetics_csv([KineticsClip("a class", "ddddddddddd", 2, 12, "val")], root / "annotations" / "val.csv")
    write_kinetics_csv([KineticsClip(None, "eeeeeeeeeee", 3, 13, "test")], root / "annotations" / "test.csv")
    _touch(root / "train" / "aaaaaaaaaaa_000001_000011.mp4")
    _touch(root / "train" / "bbbbbbbbbbb_000005_000015.mkv")
    _touch(root / "train" / "not_annotated_000000_000010.mp4")
    _touch(root / "train" / "aaaaaaaaaaa_000001_000011.txt")
    _touch(root / "val" / "ddddddddddd_000002_000012.mp4")
    _touch(root / "test" / "eeeeeeeeeee_000003_000013.webm")
    return root


def test_kinetics_lists_exactly_the_annotated_videos_present(kinetics_root):
    source = KineticsSource(kinetics_root)
    assert source.splits == ("test", "train", "val")
    paths = source.video_paths()
    assert sorted(paths) == [
        "aaaaaaaaaaa_000001_000011", "bbbbbbbbbbb_000005_000015", "ddddddddddd_000002_000012",
        "eeeeeeeeeee_000003_000013",
    ]  # fmt: skip
    assert paths["bbbbbbbbbbb_000005_000015"] == kinetics_root.resolve() / "train" / "bbbbbbbbbbb_000005_000015.mkv"
    assert source.rejected_paths() == {}


def test_kinetics_clips_in_class_folders_are_found_as_a_per_class_archive_extracts_them(kinetics_root):
    """Kinetics-600's train tarballs are one per class; whether their members sit at the archive root or in a
    ``<label>/`` folder, the clips below ``<split>/`` are read, one folder deep and no deeper."""
    write_kinetics_csv([KineticsClip("a class", "ddddddddddd", 2, 12, "val"),
                        KineticsClip("a class", "fffffffffff", 2, 12, "val")], kinetics_root / "annotations" / "val.csv")
    _touch(kinetics_root / "train" / "missing video" / "ccccccccccc_000000_000010.mp4")
    _touch(kinetics_root / "val" / "a class" / "deep" / "fffffffffff_000002_000012.mp4")  # two levels: not read
    paths = KineticsSource(kinetics_root).video_paths()
    assert paths["ccccccccccc_000000_000010"] == (
        kinetics_root.resolve() / "train" / "missing video" / "ccccccccccc_000000_000010.mp4")
    assert "fffffffffff_000002_000012" not in paths and len(paths) == 5


def test_kinetics_classes_are_sorted_train_labels_and_samples_index_them(kinetics_root):
    source = KineticsSource(kinetics_root)
    assert source.classes == ["a class", "b class", "missing video"]
    assert source.samples("val") == [("ddddddddddd_000002_000012", 0)]
    assert source.samples("test") == []  # unlabelled
    assert [c.label for c in source.clips("test")] == [None]
    with pytest.raises(ValueError, match="split 'validate' not found"):
        source.clips("validate")


def test_kinetics_label_outside_the_train_classes_is_an_error(kinetics_root):
    clip = KineticsClip("new class", "fffffffffff", 2, 12, "val")
    write_kinetics_csv([clip], kinetics_root / "annotations" / "val.csv")
    with pytest.raises(ValueError, match="'new class'"):
        KineticsSource(kinetics_root).samples("val")


def test_symlinked_video_leaving_the_root_is_refused_with_a_reason(kinetics_root, tmp_path):
    outside = _touch(tmp_path / "elsewhere" / "secret.mp4")
    (kinetics_root / "val" / "ddddddddddd_000002_000012.mp4").unlink()
    os.symlink(outside, kinetics_root / "val" / "ddddddddddd_000002_000012.mp4")
    inside_link = kinetics_root / "test" / "eeeeeeeeeee_000003_000013.mp4"
    os.symlink(kinetics_root / "test" / "eeeeeeeeeee_000003_000013.webm", inside_link)
    source = KineticsSource(kinetics_root)
    paths = source.video_paths()
    assert "ddddddddddd_000002_000012" not in paths
    assert "outside the dataset root" in source.rejected_paths()["ddddddddddd_000002_000012"]
    assert "eeeeeeeeeee_000003_000013" in paths  # a link that stays inside is fine


def test_symlinked_split_directory_leaving_the_root_is_refused(kinetics_root, tmp_path):
    _touch(tmp_path / "ssd" / "ddddddddddd_000002_000012.mp4")
    for f in (kinetics_root / "val").iterdir():
        f.unlink()
    (kinetics_root / "val").rmdir()
    os.symlink(tmp_path / "ssd", kinetics_root / "val")
    source = KineticsSource(kinetics_root)
    assert "ddddddddddd_000002_000012" not in source.video_paths()
    assert any("outside the dataset root" in reason for reason in source.rejected_paths().values())


def test_annotation_with_a_path_as_video_id_is_rejected(kinetics_root):
    (kinetics_root / "annotations" / "val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\na class,../../train/aaaaaaaaaaa,1,11,val\n"
    )
    with pytest.raises(ValueError, match="line 2: youtube_id"):
        KineticsSource(kinetics_root).video_paths()


def test_charades_lists_videos_of_both_splits_and_reads_classes(tmp_path):
    root = tmp_path / "charades"
    write_charades_csv([CharadesVideo("AAAAA", (CharadesAction(1, 0.5, 2.0),), 5.0)], root / "Charades_v1_train.csv")
    test_videos = [CharadesVideo("BBBBB", (), 4.0), CharadesVideo("CCCCC", (), 4.0)]
    write_charades_csv(test_videos, root / "Charades_v1_test.csv")
    write_charades_classes(["Holding some clothes", "Putting clothes somewhere"], root / "Charades_v1_classes.txt")
    _touch(root / "Charades_v1_480" / "AAAAA.mp4")
    _touch(root / "Charades_v1_480" / "BBBBB.mp4")
    _touch(root / "Charades_v1_480" / "ZZZZZ.mp4")  # not annotated
    source = CharadesSource(root)
    assert sorted(source.video_paths()) == ["AAAAA", "BBBBB"]
    assert source.classes == ["Holding some clothes", "Putting clothes somewhere"]
    assert source.videos("train")[0].actions == (CharadesAction(1, 0.5, 2.0),)
    with pytest.raises(ValueError, match="allowed train, test"):
        source.videos("val")


@pytest.fixture
def ava_root(tmp_path):
    root = tmp_path / "ava"
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "ava_train_v2.2.csv").write_text(
        "movieAAAAAA,0902,0.100,0.200,0.300,0.400,12,0\nmovieAAAAAA,0903,0.100,0.200,0.300,0.400,80,1\n"
    )
    (ann / "ava_val_v2.2.csv").write_text("movieBBBBBB,1798,0.000,0.000,1.000,1.000,1,0\n")
    (ann / "ava_val_excluded_timestamps_v2.2.csv").write_text("movieBBBBBB,0905\n")
    write_label_map({1: "bend/bow (at the waist)", 12: "stand", 80: "watch (a person)"},
                    ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt")  # fmt: skip
    (root / "ava_file_names_trainval_v2.1.txt").write_text("movieAAAAAA.mkv\nmovieBBBBBB.mp4\nmovieCCCCCC.webm\n")
    _touch(root / "videos_15min" / "movieAAAAAA.mkv")
    _touch(root / "videos_15min" / "movieBBBBBB.mp4")
    _touch(root / "videos_15min" / "strayvideo1.mp4")
    return root


def test_ava_lists_movies_present_and_exposes_boxes_labels_exclusions(ava_root):
    source = AvaSource(ava_root)
    assert sorted(source.video_paths()) == ["movieAAAAAA", "movieBBBBBB"]  # movieCCCCCC is not present
    assert source.movies == ["movieAAAAAA", "movieBBBBBB", "movieCCCCCC"]
    assert source.label_map == {1: "bend/bow (at the waist)", 12: "stand", 80: "watch (a person)"}
    assert source.classes == ["bend/bow (at the waist)", "stand", "watch (a person)"]
    boxes = source.boxes("train")
    assert boxes["action_id"].tolist() == [12, 80] and boxes["person_id"].tolist() == [0, 1]
    assert source.excluded("val") == {("movieBBBBBB", 905)}
    assert source.excluded("train") == set()  # no exclusions file


def test_ava_keyframe_time_is_relative_to_the_stored_segment(ava_root):
    assert AvaSource(ava_root).keyframe_time(902) == 2.0
    assert AvaSource(ava_root, video_start_sec=0).keyframe_time(902) == 902.0
    with pytest.raises(ValueError, match="video_start_sec"):
        AvaSource(ava_root, video_start_sec=-1)
    with pytest.raises(ValueError, match="version 'v3'"):
        AvaSource(ava_root, version="v3")


def test_ava_movie_list_entry_with_a_path_is_rejected(ava_root):
    (ava_root / "ava_file_names_trainval_v2.1.txt").write_text("movieAAAAAA.mkv\n../../etc/passwd\n")
    with pytest.raises(ValueError, match="line 2"):
        AvaSource(ava_root).video_paths()


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        CharadesSource(tmp_path / "nope")
