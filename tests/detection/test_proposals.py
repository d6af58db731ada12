"""Published person proposals (PySlowFast CSV, MMAction2 pickle) import into one DataFrame form, safely."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest

from slowfast.detection.proposals import (
    COLUMNS,
    filter_proposals,
    proposals_from_detections,
    read_proposals,
    read_proposals_csv,
    read_proposals_pickle,
    write_proposals_csv,
)

# As in PySlowFast's val boxes (empty label) and train boxes (one row per label of the same box, -1 = none).
PYSLOWFAST_CSV = """\
1j20qq1JyX4,0902,0.002,0.118,0.714,0.977,,0.996066
1j20qq1JyX4,0902,0.637,0.143,0.999,0.992,,0.54
1j20qq1JyX4,0903,0.010,0.120,0.700,0.980,12,0.9
1j20qq1JyX4,0903,0.010,0.120,0.700,0.980,80,0.9
-5KQ66BBWC4,1798,0.000,0.000,1.000,1.000,-1,0.81

"""


def test_pyslowfast_csv_gives_one_row_per_box_with_its_score(tmp_path):
    path = tmp_path / "ava_val_predicted_boxes.csv"
    path.write_text(PYSLOWFAST_CSV)
    df = read_proposals_csv(path)
    assert list(df.columns) == list(COLUMNS)
    assert df["video_id"].tolist() == ["1j20qq1JyX4"] * 3 + ["-5KQ66BBWC4"]
    assert df["timestamp"].tolist() == [902, 902, 903, 1798]
    assert df["timestamp"].dtype == np.int64
    np.testing.assert_array_equal(df.loc[0, ["x1", "y1", "x2", "y2"]].to_numpy(float), [0.002, 0.118, 0.714, 0.977])
    np.testing.assert_array_equal(df["score"].to_numpy(), [0.996066, 0.54, 0.9, 0.81])


def test_written_csv_is_pyslowfast_format_and_reads_back(tmp_path):
    df = pd.DataFrame(
        {
            "video_id": ["a", "a", "b"],
            "timestamp": [902, 5, 1798],
            "x1": [0.1, 0.25, 0.0],
            "y1": [0.2, 0.5, 0.0],
            "x2": [0.3, 0.75, 1.0],
            "y2": [0.4, 0.875, 1.0],
            "score": [0.9, 0.123456789, 1.0],
        }
    )
    path = tmp_path / "out" / "proposals.csv"
    write_proposals_csv(df, path)
    lines = path.read_text().splitlines()
    fields = lines[1].split(",")
    assert fields[:7] == ["a", "0005", "0.250", "0.500", "0.750", "0.875", "-1"]
    assert float(fields[7]) == 0.123456789
    assert not list(path.parent.glob(".*tmp"))  # the atomic write left no temporary file
    pd.testing.assert_frame_equal(read_proposals(path), df)
    write_proposals_csv(df, path)  # re-running overwrites with identical content
    assert path.read_text().splitlines() == lines


def test_score_filter_keeps_only_scores_strictly_above_the_threshold(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text(PYSLOWFAST_CSV.replace("0.81\n", "0.8\n"))
    kept = filter_proposals(read_proposals_csv(path), 0.8)
    assert kept["score"].tolist() == [0.996066, 0.9]
    assert filter_proposals(read_proposals_csv(path), 0.0).shape[0] == 4


@pytest.mark.parametrize(
    "line, message",
    [
        ("vid,09x2,0.1,0.2,0.3,0.4,,0.9", "timestamp '09x2' is not an integer"),
        ("vid,0902,0.1,0.2,0.3,0.4,,", "expected 8"),
        ("vid,0902,0.1,0.2", "expected 8"),
        ("vid,0902,0.1,0.2,0.3,0.4,,0.9,extra", "9 fields, expected 8"),
        ("vid,0902,0.1,0.2,0.3,0.4,,0.9,", "a trailing comma"),
        ("vid,0902,0.1,0.2,0.3,0.4,,0.9;vid,0902,0.1,0.2,0.3,0.4,,0.8", "two rows joined by ';'"),
        ("7,vid,0902,0.1,0.2,0.3,0.4,,0.9", "an extra leading column"),
        ("vid,0902,0.5,0.2,0.3,0.4,,0.9", "must be normalised"),
        ("vid,0902,0.1,0.2,0.3,1.4,,0.9", "must be normalised"),
        ("vid,0902,0.1,0.2,0.3,0.4,walk,0.9", "label 'walk' is not an integer"),
        ("vid,0902,0.1,0.2,0.3,0.4,,high", "score 'high' is not a number"),
    ],
)
def test_malformed_csv_line_is_named_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.csv"
    path.write_text("a,0902,0.1,0.2,0.3,0.4,,0.9\n\n" + line + "\n")
    with pytest.raises(ValueError) as info:
        read_proposals_csv(path)
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)
    assert message in str(info.value)


def _mmaction2_proposals() -> dict[str, np.ndarray]:
    return {
        "0f39OWEqJ24,0902": np.array([[0.011, 0.157, 0.655, 0.983, 0.998163]], dtype=np.float32),
        "0f39OWEqJ24,0912": np.array(
            [[0.054, 0.088, 0.91, 0.998, 0.068273], [0.016, 0.161, 0.519, 0.974, 0.984025]], dtype=np.float32
        ),
        "0f39OWEqJ24,0913": np.zeros((0, 5), dtype=np.float32),
        "-5KQ66BBWC4,1798": np.array([[0.1, 0.2, 0.3, 0.4]]),  # MMAction2 also takes boxes without scores
    }


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_mmaction2_pickle_gives_the_same_form(tmp_path, protocol):
    path = tmp_path / "ava_dense_proposals_val.FAIR.recall_93.9.pkl"
    path.write_bytes(pickle.dumps(_mmaction2_proposals(), protocol=protocol))
    df = read_proposals_pickle(path)
    assert list(df.columns) == list(COLUMNS)
    assert df["video_id"].tolist() == ["0f39OWEqJ24"] * 3 + ["-5KQ66BBWC4"]
    assert df["timestamp"].tolist() == [902, 912, 912, 1798]
    expected = np.concatenate([a for a in _mmaction2_proposals().values() if a.shape[1] == 5]).astype(np.float64)
    np.testing.assert_array_equal(df[["x1", "y1", "x2", "y2", "score"]].to_numpy()[:3], expected)
    assert df["score"].iloc[3] == 1.0
    pd.testing.assert_frame_equal(read_proposals(path), df)


@pytest.mark.parametrize("key", ["0f39OWEqJ24", "0f39OWEqJ24,09a2", "a,b,0902", 902])
def test_pickle_key_that_is_not_video_comma_timestamp_is_named(tmp_path, key):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"ok,0902": np.zeros((0, 5)), key: np.zeros((1, 5))}))
    with pytest.raises(ValueError, match=f"key {key!r} is not 'video_id,timestamp'"):
        read_proposals_pickle(path)


@pytest.mark.parametrize(
    "value", [np.zeros((2, 3)), np.zeros(5), [[0.1, 0.1, 0.2, 0.2, 0.9]], np.array([[0.5, 0.1, 0.2, 0.2, 0.9]])]
)
def test_pickle_value_that_is_not_a_box_array_is_named(tmp_path, value):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"vid,0902": value}))
    with pytest.raises(ValueError, match="key 'vid,0902'"):
        read_proposals_pickle(path)


class _Exploit:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_before_running_its_code(tmp_path):
    side_effect = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"vid,0902": _Exploit(str(side_effect))}))
    with pytest.raises(ValueError, match="refused global"):
        read_proposals_pickle(path)
    assert not side_effect.exists()
    # The same bytes through the plain unpickler do run the command: the refusal above is what protects.
    pickle.loads(path.read_bytes())
    assert side_effect.exists()


def test_unknown_extension_and_corrupt_pickle_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown proposal file type"):
        read_proposals(tmp_path / "boxes.json")
    path = tmp_path / "truncated.pkl"
    path.write_bytes(pickle.dumps(_mmaction2_proposals())[:40])
    with pytest.raises(ValueError, match=str(path)):
        read_proposals(path)


def test_detector_output_becomes_the_same_form_and_survives_a_csv_round_trip(tmp_path):
    detections = [np.array([[0.1, 0.2, 0.3, 0.4, 0.95]]), np.zeros((0, 5)), np.array([[0, 0, 1, 1, 0.5]] * 2)]
    df = proposals_from_detections([("a", 902), ("a", 903), ("b", 7)], detections)
    assert df["video_id"].tolist() == ["a", "b", "b"]
    assert df["timestamp"].tolist() == [902, 7, 7]
    path = tmp_path / "p.csv"
    write_proposals_csv(df, path)
    # Identical boxes on one keyframe are one proposal to PySlowFast, so the duplicate is dropped on reading.
    pd.testing.assert_frame_equal(read_proposals(path), df.iloc[:2])


def test_a_leading_index_column_on_every_row_is_reported_not_shifted(tmp_path):
    path = tmp_path / "indexed.csv"
    path.write_text("".join(f"{i},vid,0902,0.1,0.2,0.3,0.4,,0.9\n" for i in range(3)))
    with pytest.raises(ValueError, match=r"indexed\.csv: line 1: 9 fields .*an extra leading column"):
        read_proposals_csv(path)
