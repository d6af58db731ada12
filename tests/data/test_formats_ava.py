"""AVA file formats: box CSVs, label maps, exclusions and movie lists round-trip and reject malformed lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slowfast.data.formats.ava import (
    read_ava_csv,
    read_ava_groundtruth,
    read_exclusions,
    read_label_map,
    read_movie_list,
    write_ava_csv,
    write_label_map,
)


def _random_boxes(n: int, seed: int, *, detections: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    corners = np.sort(rng.random((n, 2, 2)), axis=1)
    df = pd.DataFrame(
        {
            "video_id": rng.choice(["-5KQ66BBWC4", "1j20qq1JyX4", "053oq2xB3oU"], n),
            "timestamp": rng.integers(902, 1799, n),
            "x1": corners[:, 0, 0],
            "y1": corners[:, 0, 1],
            "x2": corners[:, 1, 0],
            "y2": corners[:, 1, 1],
            "action_id": rng.integers(1, 81, n),
        }
    )
    if detections:
        df["score"] = rng.random(n)
    else:
        df["person_id"] = rng.integers(0, 20, n)
    return df


@pytest.mark.parametrize("detections", [False, True])
def test_box_csv_round_trip_keeps_rows_with_3_decimal_boxes_and_exact_scores(tmp_path, detections):
    df = _random_boxes(500, seed=1, detections=detections)
    path = tmp_path / "boxes.csv"
    write_ava_csv(df, path)
    back = read_ava_csv(path, detections=detections)
    assert list(back.columns) == list(df.columns)
    assert back["video_id"].tolist() == df["video_id"].tolist()
    assert back["timestamp"].tolist() == df["timestamp"].tolist()
    np.testing.assert_allclose(back[["x1", "y1", "x2", "y2"]], df[["x1", "y1", "x2", "y2"]].round(3), atol=1e-12)
    last = "score" if detections else "person_id"
    assert back[last].tolist() == df[last].tolist()
    assert back["action_id"].tolist() == df["action_id"].tolist()


def test_box_csv_timestamps_are_written_with_four_digits(tmp_path):
    df = _random_boxes(3, seed=2, detections=False).assign(timestamp=[5, 902, 1798])
    write_ava_csv(df, tmp_path / "gt.csv")
    stamps = [line.split(",")[1] for line in (tmp_path / "gt.csv").read_text().splitlines()]
    assert stamps == ["0005", "0902", "1798"]


def test_ground_truth_without_eighth_column_defaults_like_the_official_evaluator(tmp_path):
    gt_path = tmp_path / "gt7.csv"
    gt_path.write_text("vid,0902,0.1,0.2,0.3,0.4,12\n\nvid,0903,0.1,0.2,0.3,0.4,5,3\n")
    assert read_ava_csv(gt_path)["person_id"].tolist() == [-1, 3]


def test_a_detection_row_without_its_score_is_rejected_naming_the_line(tmp_path):
    path = tmp_path / "seven.csv"
    path.write_text("vid,0903,0.1,0.2,0.3,0.4,5,0.25\nvid,0902,0.1,0.2,0.3,0.4,12\n")
    with pytest.raises(ValueError, match=r"seven\.csv: line 2: 7 fields, expected 8"):
        read_ava_csv(path, detections=True)


GOOD = "vid,0902,0.1,0.2,0.3,0.4,7,0.5"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        # pandas would take a leading column present on every row as the index and shift the fields.
        ("".join(f"{i},vid,090{i},0.1,0.2,0.3,0.4,7,0.5\n" for i in range(3)), 1, "an extra leading column"),
        (f"{GOOD}\n{GOOD},\n", 2, "a trailing comma"),
        ("".join(f"{GOOD},\n" for _ in range(3)), 1, "a trailing comma"),
        (f"{GOOD}\n{GOOD};{GOOD}\n", 2, "two rows joined by ';'"),
        (f"{GOOD}\nvid,0903\n", 2, "2 fields, expected 8"),
    ],
)
def test_misshapen_rows_are_reported_with_file_line_and_what_was_found(tmp_path, text, line, fragment):
    path = tmp_path / "det.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"det\.csv: line {line}: ") as info:
        read_ava_csv(path, detections=True)
    assert fragment in str(info.value)


def test_2020_ground_truth_lists_keyframes_without_actions_and_2019_rejects_them(tmp_path):
    path = tmp_path / "gt2020.csv"
    path.write_text("vid,0902,0.1,0.2,0.3,0.4,7,1\nvid,0903\nother-id_x,0904\nvid,0905,0.1,0.2,0.3,0.4,9\n")
    boxes, keyframes = read_ava_groundtruth(path, protocol="activitynet-2020")
    assert boxes["timestamp"].tolist() == [902, 905] and boxes["person_id"].tolist() == [1, -1]
    assert keyframes == {("vid", 903), ("other-id_x", 904)}
    with pytest.raises(ValueError, match=r"gt2020\.csv: line 2: 2 fields, expected 7 or 8"):
        read_ava_groundtruth(path, protocol="activitynet-2019")
    with pytest.raises(ValueError, match=r"gt2020\.csv: line 2: 2 fields, expected 7 or 8"):
        read_ava_csv(path)
    well_formed = tmp_path / "gt.csv"
    well_formed.write_text("vid,0902,0.1,0.2,0.3,0.4,7,1\n")
    assert read_ava_groundtruth(well_formed, protocol="activitynet-2020")[1] == set()
    # 8-field and 2-field rows only: the fast reader's path, which must agree with the line-tracking one.
    well_formed.write_text("vid,0902,0.1,0.2,0.3,0.4,7,1\nvid,0903\n\"q,1\",0904\nvid,0905,0.1,0.2,0.3,0.4,9,2\n")
    boxes, keyframes = read_ava_groundtruth(well_formed, protocol="activitynet-2020")
    assert boxes["timestamp"].tolist() == [902, 905] and keyframes == {("vid", 903), ("q,1", 904)}
    well_formed.write_text("vid,0903\nvid,0904\n")
    boxes, keyframes = read_ava_groundtruth(well_formed, protocol="activitynet-2020")
    assert len(boxes) == 0 and keyframes == {("vid", 903), ("vid", 904)}
    path.write_text("vid,0902,0.1,0.2,0.3,0.4,7,1\nvid,09x3\n")
    with pytest.raises(ValueError, match=r"gt2020\.csv: line 2: timestamp '09x3'"):
        read_ava_groundtruth(path, protocol="activitynet-2020")
    path.write_text("vid,0902,0.1,0.2,0.3,0.4,7,1\nvid,0903,1\n")
    with pytest.raises(ValueError, match=r"line 2: 3 fields, expected 2 or 7 or 8"):
        read_ava_groundtruth(path, protocol="activitynet-2020")


def test_exclusions_need_exactly_two_fields(tmp_path):
    path = tmp_path / "ex.csv"
    path.write_text("vid,0902\nvid,0903,\n")
    with pytest.raises(ValueError, match=r"ex\.csv: line 2: 3 fields, the last one empty: a trailing comma"):
        read_exclusions(path)
    path.write_text("vid,0902\n\nvid,0903\n")
    assert read_exclusions(path) == {("vid", 902), ("vid", 903)}


@pytest.mark.parametrize(
    "bad_line, fragment",
    [
        ("vid,0903,0.1,0.2,0.3,0.4", "6 fields, expected 7 or 8"),
        ("vid,0903,0.1,0.2,0.3,0.4,7,1,9", "9 fields, expected 7 or 8"),
        ("vid,09x3,0.1,0.2,0.3,0.4,7,1", "timestamp"),
        ("vid,0903,0.1,0.2,0.3,abc,7,1", "y2"),
        ("vid,0903,0.1,0.2,0.3,0.4,7.5,1", "action_id"),
        ("vid,0903,0.1,0.2,1.3,0.4,7,1", "normalised"),
        ("vid,0903,0.5,0.2,0.3,0.4,7,1", "x1 <= x2"),
        ("vid,0903,0.1,0.2,0.3,0.4,7,nan", "person_id"),
    ],
)
def test_malformed_box_row_is_reported_with_file_and_line(tmp_path, bad_line, fragment):
    path = tmp_path / "gt.csv"
    path.write_text("vid,0902,0.1,0.2,0.3,0.4,7,1\n\n" + bad_line + "\nvid,0904,0.1,0.2,0.3,0.4,7,1\n")
    with pytest.raises(ValueError, match=r"gt\.csv: line 3: ") as info:
        read_ava_csv(path)
    assert fragment in str(info.value)


def test_empty_box_csv_gives_empty_frame_with_the_contract_columns(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    df = read_ava_csv(path, detections=True)
    assert len(df) == 0
    assert list(df.columns) == ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score"]


def test_label_map_reads_item_and_full_list_variants(tmp_path):
    (tmp_path / "items.pbtxt").write_text(
        'item {\n  name: "bend/bow (at the waist)"\n  id: 1\n}\nitem {\n  name: "crouch/kneel"\n  id: 3\n}\n'
    )
    (tmp_path / "full.pbtxt").write_text(
        "# the full action list\n"
        'label {\n  name: "talk to (e.g., self, a person, a group)"\n  label_id: 79\n'
        "  label_type: PERSON_INTERACTION\n}\n"
        'label { name: "stand" label_id: 12 label_type: PERSON_MOVEMENT }\n'
    )
    assert read_label_map(tmp_path / "items.pbtxt") == {1: "bend/bow (at the waist)", 3: "crouch/kneel"}
    full = read_label_map(tmp_path / "full.pbtxt")
    assert full == {79: "talk to (e.g., self, a person, a group)", 12: "stand"}
    assert list(full) == [79, 12]


def test_label_map_round_trip_preserves_order_and_quotes(tmp_path):
    label_map = {80: 'watch (a person)', 1: 'say "hi"', 14: "walk"}
    write_label_map(label_map, tmp_path / "map.pbtxt")
    back = read_label_map(tmp_path / "map.pbtxt")
    assert back == label_map and list(back) == list(label_map)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ('item {\n  name: "a"\n  id: 1\n  colour: 3\n}\n', 4, "unknown field"),
        ('item {\n  name: "a"\n  id: x\n}\n', 3, "id must be"),
        ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n', 5, "duplicate"),
        ('item {\n  name: "a"\n}\n', 1, "needs a name and an id"),
        ('item {\n  name: "a"\n  id: 1\n', 1, "unterminated"),
        ('thing {\n  name: "a"\n  id: 1\n}\n', 1, "expected 'item"),
    ],
)
def test_malformed_label_map_is_reported_with_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "map.pbtxt"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"map\.pbtxt: line {line}: ") as info:
        read_label_map(path)
    assert fragment in str(info.value)


def test_exclusions_are_video_timestamp_pairs(tmp_path):
    path = tmp_path / "excluded.csv"
    path.write_text("-5KQ66BBWC4,0902\n1j20qq1JyX4,1798\n")
    assert read_exclusions(path) == {("-5KQ66BBWC4", 902), ("1j20qq1JyX4", 1798)}
    path.write_text("-5KQ66BBWC4,0902\n1j20qq1JyX4\n")
    with pytest.raises(ValueError, match=r"line 2"):
        read_exclusions(path)


def test_movie_list_skips_blank_lines_and_rejects_paths(tmp_path):
    path = tmp_path / "movies.txt"
    path.write_text("-5KQ66BBWC4.mkv\n\n1j20qq1JyX4.mp4\n")
    assert read_movie_list(path) == ["-5KQ66BBWC4.mkv", "1j20qq1JyX4.mp4"]
    path.write_text("-5KQ66BBWC4.mkv\n../../etc/passwd\n")
    with pytest.raises(ValueError, match=r"line 2"):
        read_movie_list(path)


def test_line_numbers_stay_exact_in_files_large_enough_for_parallel_parsing(tmp_path):
    # pandas parses files over ~5 MB in parallel chunks; reported lines must still be absolute.
    df = _random_boxes(100_000, seed=3, detections=True)
    path = tmp_path / "big.csv"
    write_ava_csv(df, path)
    assert path.stat().st_size > 5 * 1024 * 1024
    assert len(read_ava_csv(path, detections=True)) == 100_000
    lines = path.read_text().splitlines()
    for bad_line, fragment in [(97_531, "x1 'oops'"), (88_888, "5 fields")]:
        broken = list(lines)
        broken[bad_line - 1] = "vid,0902,oops,0.2,0.3,0.4,7,0.5" if "oops" in fragment else "vid,0902,0.1,0.2,0.3"
        path.write_text("\n".join(broken) + "\n")
        with pytest.raises(ValueError, match=rf"line {bad_line}: {fragment}"):
            read_ava_csv(path, detections=True)
