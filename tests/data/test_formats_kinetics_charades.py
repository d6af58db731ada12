"""Kinetics and Charades annotation files: hand-written samples in the official formats, round trips, and malformed
lines rejected with the file and line named."""

from __future__ import annotations

import pytest

from slowfast.data.formats.charades import (
    CharadesAction,
    CharadesVideo,
    read_charades_classes,
    read_charades_csv,
    write_charades_classes,
    write_charades_csv,
)
from slowfast.data.formats.kinetics import KineticsClip, clip_video_id, read_kinetics_csv, write_kinetics_csv

KINETICS_400 = """label,youtube_id,time_start,time_end,split,is_cc
abseiling,--07WQ2iBlw,1,11,train,0
"petting animal (not cat)",-0AHwXDc0S8,10,20,train,0
"passing American football (in game)",zzx8tAPmGOE,35,45,train,1
"""
KINETICS_TEST_NO_LABEL = """youtube_id,time_start,time_end,split
--33Lscn6sk,4,14,test
"""
KINETICS_TEST_EMPTY_LABEL = """label,youtube_id,time_start,time_end,split
,--33Lscn6sk,4,14,test
"""

CHARADES = """id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
46GP8,HR43,Kitchen,6,7,Yes,"A person cooking on a stove, then drinks.",food;stove;cup,"A person cooks.;Someone drinks, twice.",c092 11.90 21.20;c147 0.00 12.60,24.83
N11GT,0KZ7,Stairs,6,7,Yes,A person walks up the stairs.,stairs,A person walks.,,30.25
0IH69,6RE8,Bedroom,,,No,Sleeping.,bed,Sleeps.,c059 0.00 8.10,
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_kinetics_reads_official_columns_and_quoted_labels(tmp_path):
    clips = read_kinetics_csv(_write(tmp_path, "train.csv", KINETICS_400))
    assert clips[0] == KineticsClip("abseiling", "--07WQ2iBlw", 1, 11, "train")
    assert clips[1].label == "petting animal (not cat)"
    assert clips[2].label == "passing American football (in game)"
    assert clip_video_id(clips[0]) == "--07WQ2iBlw_000001_000011"


@pytest.mark.parametrize("text", [KINETICS_TEST_NO_LABEL, KINETICS_TEST_EMPTY_LABEL])
def test_kinetics_test_split_without_labels_reads_label_none(tmp_path, text):
    (clip,) = read_kinetics_csv(_write(tmp_path, "test.csv", text))
    assert clip == KineticsClip(None, "--33Lscn6sk", 4, 14, "test")


def test_kinetics_write_then_read_round_trips(tmp_path):
    clips = read_kinetics_csv(_write(tmp_path, "in.csv", KINETICS_400))
    clips.append(KineticsClip(None, "abc_DEF-123", 0, 7, "test"))
    write_kinetics_csv(clips, tmp_path / "out.csv")
    assert read_kinetics_csv(tmp_path / "out.csv") == clips
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "label,youtube_id,time_start,time_end,split"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("abseiling,--07WQ2iBlw,1,11", "expected 5 fields"),
        ("abseiling,--07WQ2iBlw,one,11,train", "time_start"),
        ("abseiling,--07WQ2iBlw,1.5,11,train", "time_start"),
        ("abseiling,--07WQ2iBlw,11,1,train", "time_end"),
        ("abseiling,../../etc/passwd,1,11,train", "youtube_id"),
        ("abseiling,--07WQ2iBlw,1,11,", "split"),
    ],
)
def test_kinetics_malformed_line_names_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path, "bad.csv", "label,youtube_id,time_start,time_end,split\nok,abc,1,11,train\n" + line + "\n")
    with pytest.raises(ValueError, match=reason) as info:
        read_kinetics_csv(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_kinetics_bad_header_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="line 1: bad header"):
        read_kinetics_csv(_write(tmp_path, "bad.csv", "name,youtube_id,start,end,split\n"))


def test_charades_reads_actions_free_text_and_empty_fields(tmp_path):
    videos = read_charades_csv(_write(tmp_path, "Charades_v1_train.csv", CHARADES))
    assert [v.id for v in videos] == ["46GP8", "N11GT", "0IH69"]
    assert videos[0].actions == (CharadesAction(92, 11.9, 21.2), CharadesAction(147, 0.0, 12.6))
    assert videos[0].length == pytest.approx(24.83)
    assert videos[0].script == "A person cooking on a stove, then drinks."
    assert videos[0].objects == "food;stove;cup"
    assert videos[1].actions == () and videos[1].length == pytest.approx(30.25)
    assert videos[2].length is None and videos[2].quality == "" and videos[2].verified == "No"


def test_charades_write_reproduces_the_official_file_byte_for_byte(tmp_path):
    source = _write(tmp_path, "Charades_v1_test.csv", CHARADES)
    write_charades_csv(read_charades_csv(source), tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == CHARADES


def test_charades_write_then_read_round_trips_generated_records(tmp_path):
    videos = [
        CharadesVideo("AB12C", (CharadesAction(3, 1.2, 4.7), CharadesAction(0, 0.0, 2.5)), 10.0, scene="Synthetic"),
        CharadesVideo("ZZ999", (), None),
    ]
    write_charades_csv(videos, tmp_path / "v.csv")
    assert read_charades_csv(tmp_path / "v.csv") == videos


@pytest.mark.parametrize(
    ("actions", "reason"),
    [("c92 1.00 2.00", "not 'c<3 digits>"), ("c092 one 2.00", "start"), ("c092 1.00", "not 'c<3 digits>"),
     ("c092 1.00 nan", "end")],
)  # fmt: skip
def test_charades_malformed_action_names_file_and_line(tmp_path, actions, reason):
    header = CHARADES.splitlines()[0]
    rows = f"AAAAA,S,K,7,7,Yes,s,o,d,c001 0.00 1.00,5.00\nBBBBB,S,K,7,7,Yes,s,o,d,{actions},5\n"
    path = _write(tmp_path, "bad.csv", f"{header}\n{rows}")
    with pytest.raises(ValueError, match=reason) as info:
        read_charades_csv(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_charades_wrong_field_count_and_unsafe_id_are_rejected(tmp_path):
    header = CHARADES.splitlines()[0]
    with pytest.raises(ValueError, match="line 2: expected 11 fields"):
        read_charades_csv(_write(tmp_path, "a.csv", f"{header}\nAAAAA,S,K,7\n"))
    with pytest.raises(ValueError, match="line 2: id must match"):
        read_charades_csv(_write(tmp_path, "b.csv", f"{header}\n../x,S,K,7,7,Yes,s,o,d,,5\n"))


def test_charades_classes_round_trip_and_reject_gaps(tmp_path):
    names = ["Holding some clothes", "Putting clothes somewhere", "Taking some clothes from somewhere"]
    write_charades_classes(names, tmp_path / "Charades_v1_classes.txt")
    assert (tmp_path / "Charades_v1_classes.txt").read_text().splitlines()[0] == "c000 Holding some clothes"
    assert read_charades_classes(tmp_path / "Charades_v1_classes.txt") == names
    with pytest.raises(ValueError, match="line 2: class ids must be consecutive"):
        read_charades_classes(_write(tmp_path, "gap.txt", "c000 a\nc002 b\n"))
    with pytest.raises(ValueError, match="line 1: expected 'c<3 digits> <class name>'"):
        read_charades_classes(_write(tmp_path, "bad.txt", "000 a\n"))
