"""Shipped real-dataset manifests: structure and published counts, and archives shaped like the real ones
extracting into the layout the sources read."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from slowfast.cli import main as cli_main
from slowfast.data import catalog
from slowfast.data.download import Manifest, ManifestItem, download_manifest, load_manifest
from slowfast.data.sources import AvaSource, CharadesSource, KineticsSource

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"


def test_shipped_manifests_are_the_generated_ones():
    rendered = catalog.rendered_manifests()
    assert sorted(rendered) == sorted(p.name for p in MANIFESTS.glob("*.yaml"))
    for name, text in rendered.items():
        assert (MANIFESTS / name).read_text(encoding="utf-8") == text, f"{name}: run slowfast datasets --write"


@pytest.mark.parametrize(("file_name", "items", "archives"), [
    ("kinetics400.yaml", 242 + 20 + 39 + 1 + 3, 242 + 20 + 39 + 1),
    ("kinetics600.yaml", 9, 0),
    ("charades.yaml", 2, 2),
    ("ava.yaml", 299 + 2, 1),
    ("paper.yaml", 305 + 2 + 301, 302 + 2 + 1),
])
def test_manifest_loads_with_the_published_file_counts_and_a_source_per_item(file_name, items, archives):
    path = MANIFESTS / file_name
    manifest = load_manifest(path)  # the download stage's own validation
    assert len(manifest.items) == items
    assert sum(item.extract for item in manifest.items) == archives
    assert all(item.url.startswith("https://") for item in manifest.items)
    lines = path.read_text().splitlines()
    item_lines = [i for i, line in enumerate(lines) if line.startswith("  - ")]
    assert len(item_lines) == items
    assert all(lines[i - 1].startswith("  # source: ") for i in item_lines), "every URL cites where it is published"


def test_ava_manifest_has_the_299_trainval_movies_under_videos():
    manifest = load_manifest(MANIFESTS / "ava.yaml")
    movies = [i for i in manifest.items if i.dest.startswith("ava/videos/")]
    assert len(movies) == len({m.dest for m in movies}) == 299
    assert {Path(m.dest).suffix for m in movies} == {".mkv", ".mp4", ".webm"}
    assert all(m.url == f"https://s3.amazonaws.com/ava-dataset/trainval/{Path(m.dest).name}" for m in movies)


def test_kinetics400_parts_are_numbered_without_gaps():
    manifest = load_manifest(MANIFESTS / "kinetics400.yaml")
    for split, parts in catalog.K400_PARTS.items():
        dests = [i.dest for i in manifest.items if i.dest.startswith(f"kinetics/{split}/part_")]
        assert dests == [f"kinetics/{split}/part_{n}.tar.gz" for n in range(parts)]


# ------------------------------------------------------------------ archives with the real member layout
def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _kinetics_csv(rows: list[tuple[str, str, int, int, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
    writer.writerows(rows)
    return out.getvalue().encode()


def _local(shipped: str, files: dict[str, Path]) -> Manifest:
    """The shipped manifest's items whose dest we built a tiny stand-in for, fetched from that file instead."""
    items = [ManifestItem(i.name, f"file://{files[i.dest]}", i.dest, extract=i.extract)
             for i in load_manifest(MANIFESTS / shipped).items if i.dest in files]
    assert len(items) == len(files), "every stand-in replaces an item of the shipped manifest"
    return Manifest(1, tuple(items))


def test_kinetics400_archives_extract_into_the_layout_kinetics_source_reads(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    clip = b"not a real video, only its name matters here"
    files = {
        "kinetics/train/part_0.tar.gz": _tar(src / "p0.tgz", {"aaaaaaaaaaa_000001_000011.mp4": clip,
                                                              "bbbbbbbbbbb_000005_000015.mp4": clip}),
        "kinetics/val/part_0.tar.gz": _tar(src / "v0.tgz", {"ccccccccccc_000000_000010.mp4": clip}),
        "kinetics/replacement/replacement_for_corrupted_k400.tgz": _tar(
            src / "r.tgz", {"replacement_for_corrupted_k400/bbbbbbbbbbb_000005_000015.mp4": b"fixed"}),
        "kinetics/annotations/train.csv": src / "train.csv",
        "kinetics/annotations/val.csv": src / "val.csv",
    }
    (src / "train.csv").write_bytes(_kinetics_csv([("abseiling", "aaaaaaaaaaa", 1, 11, "train"),
                                                   ("zumba", "bbbbbbbbbbb", 5, 15, "train")]))
    (src / "val.csv").write_bytes(_kinetics_csv([("zumba", "ccccccccccc", 0, 10, "val")]))
    report = download_manifest(_local("kinetics400.yaml", files), tmp_path / "raw", progress=False)
    assert report.ok and len(report.extracted) == 3
    source = KineticsSource(tmp_path / "raw" / "kinetics")
    paths = source.video_paths()
    assert sorted(paths) == ["aaaaaaaaaaa_000001_000011", "bbbbbbbbbbb_000005_000015", "ccccccccccc_000000_000010"]
    assert paths["aaaaaaaaaaa_000001_000011"].parent.name == "train"
    assert paths["bbbbbbbbbbb_000005_000015"].read_bytes() == b"fixed", "the replacement wins over the corrupted"
    assert source.samples("val") == [("ccccccccccc_000000_000010", 1)]


def test_charades_archives_extract_into_the_layout_charades_source_reads(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    train = header + "46GP8,HR43,Kitchen,6,7,Yes,s,o,d,c092 11.90 21.20;c147 0.00 12.60,24.83\n"
    test = header + "YSKX3,KL7,Pantry,5,7,Yes,s,o,d,c092 0.00 5.00,30.00\n"
    classes = "".join(f"c{i:03d} class {i}\n" for i in range(157))
    files = {
        "charades/Charades.zip": _zip(src / "a.zip", {"Charades/Charades_v1_train.csv": train.encode(),
                                                      "Charades/Charades_v1_test.csv": test.encode(),
                                                      "Charades/Charades_v1_classes.txt": classes.encode(),
                                                      "Charades/README.txt": b"readme"}),
        "charades/Charades_v1_480.zip": _zip(src / "v.zip", {"Charades_v1_480/46GP8.mp4": b"v",
                                                             "Charades_v1_480/YSKX3.mp4": b"v"}),
    }
    report = download_manifest(_local("charades.yaml", files), tmp_path / "raw", progress=False)
    assert report.ok and len(report.extracted) == 2
    source = CharadesSource(tmp_path / "raw" / "charades")
    assert len(source.classes) == 157
    assert [v.id for v in source.videos("train")] == ["46GP8"]
    assert sorted(source.video_paths()) == ["46GP8", "YSKX3"]


def test_ava_files_land_where_ava_source_reads_full_movies(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    movies = catalog.AVA_TRAINVAL_FILES[:2]
    ids = [Path(m).stem for m in movies]
    box = "{vid},0902,0.1,0.1,0.5,0.9,12,0\n"
    label_map = 'item {\n  name: "stand"\n  id: 12\n}\n'
    files = {
        "ava/annotations/ava_v2.2.zip": _zip(src / "ava_v2.2.zip", {
            "ava_train_v2.2.csv": box.format(vid=ids[0]).encode(),
            "ava_val_v2.2.csv": box.format(vid=ids[1]).encode(),
            "ava_action_list_v2.2_for_activitynet_2019.pbtxt": label_map.encode(),
            "ava_train_excluded_timestamps_v2.2.csv": b"",
            "ava_val_excluded_timestamps_v2.2.csv": f"{ids[1]},0903\n".encode(),
        }),
        "ava/ava_file_names_trainval_v2.1.txt": src / "list.txt",
        **{f"ava/videos/{m}": src / m for m in movies},
    }
    (src / "list.txt").write_text("".join(f"{m}\n" for m in movies))
    for m in movies:
        (src / m).write_bytes(b"movie")
    report = download_manifest(_local("ava.yaml", files), tmp_path / "raw", progress=False)
    assert report.ok
    source = AvaSource(tmp_path / "raw" / "ava", video_start_sec=0)
    assert sorted(source.video_paths()) == sorted(ids)
    assert source.label_map == {12: "stand"}
    assert source.excluded("val") == {(ids[1], 903)}
    assert source.keyframe_time(902) == 902.0


# ------------------------------------------------------------------------------------------------ CLI
def test_slowfast_datasets_lists_files_download_and_shards_at_the_configured_short_side(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"decode": {"frames": {"short_side": 128}}}))
    assert cli_main(["datasets", "--manifests", str(MANIFESTS), "--params", str(params), "--json"]) == 0
    rows = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["kinetics400"]["files"] == 305 and rows["ava"]["files"] == 301
    assert rows["kinetics400"]["short_side"] == 128
    assert rows["kinetics400"]["download_bytes"] > 400 * 2**30
    assert cli_main(["datasets", "--manifests", str(MANIFESTS), "--short-side", "256", "--json"]) == 0
    at_256 = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}
    # bytes scale with the frame area: twice the short side, four times the shards
    assert at_256["kinetics400"]["shard_bytes"] == pytest.approx(4 * rows["kinetics400"]["shard_bytes"])
    assert rows["kinetics600"]["shard_bytes"] is None  # clip count not published: no estimate invented
    assert cli_main(["datasets", "--manifests", str(MANIFESTS), "--short-side", "256"]) == 0
    table = capsys.readouterr().out
    assert "kinetics400" in table and "305" in table and "TB" in table


def test_from_list_turns_a_published_url_list_into_an_extracting_manifest(tmp_path, capsys):
    listing = tmp_path / "k600_train_path.txt"
    listing.write_text("https://s3.amazonaws.com/kinetics/600/train/pull ups.tar.gz\n"  # raw, as the K600 lists
                       "https://s3.amazonaws.com/kinetics/600/train/tying%20knot%20(not%20on%20a%20tie).tar.gz\n"
                       "https://s3.amazonaws.com/kinetics/600/train/squat.tar.gz\n\n")
    assert cli_main(["datasets", "--from-list", str(listing), "--dest-prefix", "kinetics/train"]) == 0
    out = tmp_path / "m.yaml"
    out.write_text(capsys.readouterr().out)
    manifest = load_manifest(out)
    assert [i.dest for i in manifest.items] == ["kinetics/train/pull ups.tar.gz",
                                                "kinetics/train/tying knot (not on a tie).tar.gz",
                                                "kinetics/train/squat.tar.gz"]
    assert [i.url.rsplit("/", 1)[1] for i in manifest.items] == [
        "pull%20ups.tar.gz", "tying%20knot%20(not%20on%20a%20tie).tar.gz", "squat.tar.gz"]
    assert all(i.extract for i in manifest.items)


def test_a_list_line_with_raw_spaces_is_fetched_over_http_and_extracted(http_server, tmp_path):
    """The K600 lists name per-class archives with the class name's spaces left raw (pytorch/vision#5564); an HTTP
    client refuses such a request line, so the manifest made from the list must carry the encoded URL."""
    archive = _tar(tmp_path / "a.tgz", {"aaaaaaaaaaa_000001_000011.mp4": b"clip"})
    http_server.serve("/kinetics/600/train/pull%20ups.tar.gz", archive.read_bytes())
    doc = catalog.manifest_from_list([f"{http_server.base}/kinetics/600/train/pull ups.tar.gz"], "kinetics/train")
    manifest = Manifest(1, tuple(ManifestItem(**item) for item in doc["items"]))
    report = download_manifest(manifest, tmp_path / "raw", retries=0, progress=False,
                               allow_insecure_hosts=("127.0.0.1",))
    assert report.ok, report.failures
    assert (tmp_path / "raw/kinetics/train/aaaaaaaaaaa_000001_000011.mp4").read_bytes() == b"clip"
    assert [h.path for h in http_server.log] == ["/kinetics/600/train/pull%20ups.tar.gz"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)


def _download_stage(manifest: Path, out: Path, tmp_path: Path) -> dict:
    """`python -m stages.download` as DVC runs it, with download.manifest = ``manifest``; its metrics."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["manifest"] = str(manifest)
    run = tmp_path / f"stage-{manifest.stem}"
    run.mkdir()
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    done = _run([sys.executable, "-m", "stages.download", "--out", str(out), "--metrics", str(run / "m.json"),
                 "--failures", str(run / "f.json"), "--params", str(run / "params.yaml")], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((run / "m.json").read_text())


def test_the_download_stage_fetches_the_shipped_charades_manifest_into_the_charades_layout(tmp_path):
    """As DVC runs it: `python -m stages.download` with download.manifest = the shipped file, its two URLs pointed
    at tiny archives with the real member paths (everything else of the file unchanged)."""
    src = tmp_path / "src"
    src.mkdir()
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    _zip(src / "Charades.zip", {"Charades/Charades_v1_train.csv": (header + "AAAAA,s,k,6,7,Yes,s,o,d,,10\n").encode(),
                                "Charades/Charades_v1_test.csv": header.encode(),
                                "Charades/Charades_v1_classes.txt": b"c000 Holding some clothes\n"})
    _zip(src / "Charades_v1_480.zip", {"Charades_v1_480/AAAAA.mp4": b"v"})
    text = (MANIFESTS / "charades.yaml").read_text()
    base = "https://ai2-public-datasets.s3-us-west-2.amazonaws.com/charades/"
    assert text.count(base) == 2
    manifest = tmp_path / "charades.yaml"
    manifest.write_text(text.replace(base, f"{src.as_uri()}/"))
    metrics = _download_stage(manifest, tmp_path / "raw", tmp_path)
    assert (metrics["items"], metrics["extracted"], metrics["failures"]) == (2, 2, 0)
    source = CharadesSource(tmp_path / "raw" / "charades")
    assert source.classes == ["Holding some clothes"] and list(source.video_paths()) == ["AAAAA"]


def test_kinetics600_from_the_published_path_list_to_labelled_clips_as_a_user_runs_it(tmp_path):
    """Kinetics-600's train tarballs are one per class (``train/<label>.tar.gz``), named only in
    ``k600_train_path.txt`` with the label's spaces left raw (pytorch/vision#5564); their member layout is not
    published, so one archive here holds its clips at the root and the other in a ``<label>/`` folder, the two
    layouts the Kinetics source reads. The user's steps, each the real command: the download stage on the shipped
    ``kinetics600.yaml`` (its URLs pointed at a local copy of the mirror), ``slowfast datasets --from-list`` on the
    list that run fetched, the download stage on the manifest it printed; then the source finds the clips with their
    labels."""
    mirror = tmp_path / "mirror"  # laid out as https://s3.amazonaws.com/kinetics/600/
    clips = {"pull ups": [("aaaaaaaaaaa", 1, 11), ("bbbbbbbbbbb", 5, 15)], "squat": [("ccccccccccc", 0, 10)]}
    in_class_folder = {"pull ups": False, "squat": True}
    for folder in ("annotations", "train", "val", "test"):
        (mirror / folder).mkdir(parents=True)
    lines = []
    for label, rows in clips.items():
        prefix = f"{label}/" if in_class_folder[label] else ""
        _tar(mirror / "train" / f"{label}.tar.gz",
             {f"{prefix}{yt}_{s:06d}_{e:06d}.mp4": f"{label} {yt}".encode() for yt, s, e in rows})
        lines.append(f"{mirror.as_uri()}/train/{label}.tar.gz")
    (mirror / "train" / "k600_train_path.txt").write_text("\n".join(lines) + "\n")
    _tar(mirror / "val" / "squat.tar.gz", {"ddddddddddd_000003_000013.mp4": b"squat ddddddddddd"})
    (mirror / "val" / "k600_val_path.txt").write_text(f"{mirror.as_uri()}/val/squat.tar.gz\n")
    _tar(mirror / "test" / "part_0.tar.gz", {"eeeeeeeeeee_000002_000012.mp4": b"test eeeeeeeeeee"})
    (mirror / "test" / "k600_test_path.txt").write_text(f"{mirror.as_uri()}/test/part_0.tar.gz\n")
    annotations = mirror / "annotations"
    (annotations / "train.csv").write_bytes(_kinetics_csv(
        [(label, yt, s, e, "train") for label, rows in clips.items() for yt, s, e in rows]))
    (annotations / "val.csv").write_bytes(_kinetics_csv([("squat", "ddddddddddd", 3, 13, "val")]))
    (annotations / "test.csv").write_text("youtube_id,time_start,time_end,split\neeeeeeeeeee,2,12,test\n")
    for name in ("train.txt", "val.txt", "kinetics600_holdout_test.csv"):  # fetched, not read by the pipeline
        (annotations / name).write_text(f"stand-in for {name}\n")

    base = "https://s3.amazonaws.com/kinetics/600/"
    text = (MANIFESTS / "kinetics600.yaml").read_text()
    assert text.count(base) == 9
    shipped = tmp_path / "kinetics600.yaml"
    shipped.write_text(text.replace(base, f"{mirror.as_uri()}/"))
    raw = tmp_path / "data" / "raw"
    first = _download_stage(shipped, raw, tmp_path)
    assert (first["items"], first["failures"]) == (9, 0)
    listing = raw / "kinetics" / "lists" / "k600_train_path.txt"
    assert listing.read_text() == (mirror / "train" / "k600_train_path.txt").read_text()

    lists = raw / "kinetics" / "lists"
    per_split = [arg for split in ("train", "val", "test") for arg in
                 ("--from-list", str(lists / f"k600_{split}_path.txt"), "--dest-prefix", f"kinetics/{split}")]
    made = _run([str(Path(sys.executable).parent / "slowfast"), "datasets", "--include", str(shipped), *per_split],
                tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    whole = tmp_path / "k600.yaml"  # one manifest: the shipped items, then every split's archives
    whole.write_text(made.stdout)
    second = _download_stage(whole, raw, tmp_path)
    assert (second["items"], second["skipped"], second["extracted"], second["failures"]) == (13, 9, 4, 0)

    source = KineticsSource(raw / "kinetics")
    assert source.classes == ["pull ups", "squat"]
    assert sorted(source.samples("train")) == [("aaaaaaaaaaa_000001_000011", 0), ("bbbbbbbbbbb_000005_000015", 0),
                                               ("ccccccccccc_000000_000010", 1)]
    paths = source.video_paths()
    assert sorted(paths) == ["aaaaaaaaaaa_000001_000011", "bbbbbbbbbbb_000005_000015", "ccccccccccc_000000_000010",
                             "ddddddddddd_000003_000013", "eeeeeeeeeee_000002_000012"]
    train = (raw / "kinetics" / "train").resolve()
    assert paths["aaaaaaaaaaa_000001_000011"].parent == train  # members at the archive root
    assert paths["ccccccccccc_000000_000010"].parent == train / "squat"  # members in a class folder
    assert paths["ccccccccccc_000000_000010"].read_bytes() == b"squat ccccccccccc"
    assert source.samples("val") == [("ddddddddddd_000003_000013", 1)]
    assert paths["ddddddddddd_000003_000013"].parent == (raw / "kinetics" / "val").resolve()
    assert paths["eeeeeeeeeee_000002_000012"].read_bytes() == b"test eeeeeeeeeee"


def test_from_list_refuses_a_list_without_its_dest_prefix_and_a_clash_with_an_included_manifest(tmp_path, capsys):
    listing = tmp_path / "k600_train_path.txt"
    listing.write_text("https://s3.amazonaws.com/kinetics/600/train/squat.tar.gz\n")
    assert cli_main(["datasets", "--from-list", str(listing), "--from-list", str(listing),
                     "--dest-prefix", "kinetics/train"]) != 0
    assert "--dest-prefix" in capsys.readouterr().err
    included = tmp_path / "m.yaml"
    included.write_text(yaml.safe_dump({"version": 1, "items": [
        {"name": "x", "url": "https://example.org/squat.tar.gz", "dest": "kinetics/train/squat.tar.gz"}]}))
    assert cli_main(["datasets", "--include", str(included), "--from-list", str(listing),
                     "--dest-prefix", "kinetics/train"]) != 0
    out, err = capsys.readouterr()
    assert out == "" and "appears twice" in err
