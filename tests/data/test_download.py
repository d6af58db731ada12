"""download_manifest against a real local HTTP server: resumable, retried, verified, atomic, idempotent, safe."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from slowfast.config import ConfigError
from slowfast.data.download import (
    Manifest,
    ManifestItem,
    UnsafeURLError,
    check_redirect,
    download_manifest,
    load_manifest,
)

LOCAL = ("127.0.0.1",)


def _payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed * 7 + i // 251) % 256 for i in range(n))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _item(name: str, url: str, data: bytes | None = None, **kw) -> ManifestItem:
    checks = {"sha256": _sha(data), "size": len(data)} if data is not None else {}
    return ManifestItem(name=name, url=url, dest=kw.pop("dest", f"files/{name}.bin"), **{**checks, **kw})


def _get(manifest_items, out_dir, **kw):
    kw = {"workers": 2, "retries": 3, "backoff": 0.0, "progress": False, "allow_insecure_hosts": LOCAL, **kw}
    return download_manifest(Manifest(version=1, items=tuple(manifest_items)), out_dir, **kw)


def _names(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_parallel_download_writes_verified_files_under_final_names_only(http_server, tmp_path):
    blobs = {f"v{i}": _payload(70_000 + i * 1000, seed=i) for i in range(4)}
    items = [_item(n, http_server.serve(f"/{n}", d), d) for n, d in blobs.items()]
    report = _get(items, tmp_path)
    assert report.ok and sorted(report.downloaded) == sorted(blobs)
    assert report.bytes_transferred == sum(map(len, blobs.values()))
    for name, data in blobs.items():
        assert (tmp_path / "files" / f"{name}.bin").read_bytes() == data
    assert not list(tmp_path.rglob("*.part"))


def test_rerun_skips_verified_files_without_any_request(http_server, tmp_path):
    data = _payload(50_000)
    items = [_item("a", http_server.serve("/a", data), data), _item("b", http_server.serve("/b", data[:999]))]
    assert _get(items, tmp_path).ok
    requests_before = len(http_server.log)
    again = _get(items, tmp_path)
    assert again.skipped == ("a", "b") and again.downloaded == ()
    assert again.bytes_transferred == 0
    assert len(http_server.log) == requests_before


def test_partial_file_is_resumed_with_a_range_request_for_the_rest_only(http_server, tmp_path):
    data = _payload(120_000)
    item = _item("clip", http_server.serve("/clip", data), data)
    part = tmp_path / "files" / "clip.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:45_000])
    report = _get([item], tmp_path)
    assert report.downloaded == ("clip",)
    [hit] = http_server.hits("/clip")
    assert (hit.range, hit.status, hit.bytes_sent) == ("bytes=45000-", 206, len(data) - 45_000)
    assert report.bytes_transferred == len(data) - 45_000
    assert (tmp_path / "files" / "clip.bin").read_bytes() == data
    assert not part.exists()


def test_server_without_range_support_restarts_the_file_cleanly(http_server, tmp_path):
    data = _payload(80_000)
    item = _item("clip", http_server.serve("/clip", data, ranges=False), data)
    part = tmp_path / "files" / "clip.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that must not survive" * 100)  # appending to it would break the sha256
    report = _get([item], tmp_path)
    assert report.ok
    [hit] = http_server.hits("/clip")
    assert hit.range is not None and (hit.status, hit.bytes_sent) == (200, len(data))
    assert (tmp_path / "files" / "clip.bin").read_bytes() == data


def test_partial_file_the_server_cannot_continue_is_restarted(http_server, tmp_path):
    data = _payload(9_000)
    item = _item("clip", http_server.serve("/clip", data))  # no size: the client cannot tell the .part is too long
    part = tmp_path / "files" / "clip.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data + b"stale tail")
    assert _get([item], tmp_path).ok
    assert [(h.range, h.status) for h in http_server.hits("/clip")] == [(f"bytes={len(data) + 10}-", 416), (None, 200)]
    assert (tmp_path / "files" / "clip.bin").read_bytes() == data


def test_dropped_connection_is_retried_and_resumes_where_it_stopped(http_server, tmp_path):
    data = _payload(100_000)
    item = _item("clip", http_server.serve("/clip", data, drop_first=1), data)
    report = _get([item], tmp_path)
    assert report.ok
    first, second = http_server.hits("/clip")
    assert first.range is None and first.bytes_sent == len(data) // 2
    assert second.range == f"bytes={len(data) // 2}-" and second.bytes_sent == len(data) - len(data) // 2
    assert (tmp_path / "files" / "clip.bin").read_bytes() == data


def test_dropped_connection_without_known_size_is_still_detected(http_server, tmp_path):
    data = _payload(30_000)
    item = _item("clip", http_server.serve("/clip", data, drop_first=1))  # no size, no sha256
    assert _get([item], tmp_path).ok
    assert len(http_server.hits("/clip")) == 2
    assert (tmp_path / "files" / "clip.bin").read_bytes() == data


def test_server_errors_are_retried_until_success(http_server, tmp_path):
    data = _payload(10_000)
    item = _item("clip", http_server.serve("/clip", data, fail_first=2), data)
    report = _get([item], tmp_path, retries=2)
    assert report.ok
    assert [h.status for h in http_server.hits("/clip")] == [500, 500, 200]


def test_failures_become_records_with_reasons_and_other_items_finish(http_server, tmp_path):
    good = _payload(20_000)
    items = [
        _item("missing", http_server.serve("/missing", status=404)),
        _item("flaky", http_server.serve("/flaky", good, fail_first=10), good),
        _item("good", http_server.serve("/good", good), good),
    ]
    report = _get(items, tmp_path, retries=1)
    assert report.downloaded == ("good",)
    by_name = {f.name: f for f in report.failures}
    assert sorted(by_name) == ["flaky", "missing"]
    assert "404" in by_name["missing"].reason and by_name["missing"].url.endswith("/missing")
    assert "gave up after 2 attempts" in by_name["flaky"].reason and "500" in by_name["flaky"].reason
    assert len(http_server.hits("/missing")) == 1  # 4xx is not retried
    assert _names(tmp_path) == ["files", "files/good.bin"]


@pytest.mark.parametrize("check", ["sha256", "size"])
def test_checksum_or_size_mismatch_fails_and_leaves_no_file(http_server, tmp_path, check):
    data = _payload(40_000)
    expected = {"sha256": _sha(data + b"x")} if check == "sha256" else {"size": len(data) - 1}
    item = ManifestItem(name="clip", url=http_server.serve("/clip", data), dest="clip.bin", **expected)
    report = _get([item], tmp_path)
    [failure] = report.failures
    assert f"{check} mismatch" in failure.reason
    assert _names(tmp_path) == []


def test_existing_final_file_that_does_not_verify_is_downloaded_again(http_server, tmp_path):
    data = _payload(5_000)
    (tmp_path / "clip.bin").write_bytes(b"truncated")
    report = _get([_item("clip", http_server.serve("/clip", data), data, dest="clip.bin")], tmp_path)
    assert report.downloaded == ("clip",)
    assert (tmp_path / "clip.bin").read_bytes() == data


def test_file_url_is_copied_and_verified(tmp_path):
    data = _payload(33_333)
    source = tmp_path / "src" / "clip.bin"
    source.parent.mkdir()
    source.write_bytes(data)
    out = tmp_path / "out"
    report = _get([_item("clip", source.as_uri(), data)], out)
    assert report.downloaded == ("clip",)
    assert (out / "files" / "clip.bin").read_bytes() == data
    missing = _get([_item("gone", (tmp_path / "nope.bin").as_uri())], out)
    assert "FileNotFoundError" in missing.failures[0].reason


def test_plain_http_is_refused_before_any_request_without_the_explicit_allowance(http_server, tmp_path):
    item = _item("clip", http_server.serve("/clip", b"data"))
    with pytest.raises(ConfigError) as err:
        _get([item], tmp_path, allow_insecure_hosts=())
    assert err.value.key == "items[0].url"
    assert http_server.log == [] and _names(tmp_path) == []


def test_redirects_must_keep_the_scheme_and_the_host_policy(http_server, tmp_path):
    data = _payload(2_000)
    target = http_server.serve("/real", data)
    items = [
        _item("same", http_server.serve("/moved", redirect=target), data),
        _item("to-file", http_server.serve("/to-file", redirect="file:///etc/passwd")),
        _item("to-host", http_server.serve("/to-host", redirect=target.replace("127.0.0.1", "localhost"))),
    ]
    report = _get(items, tmp_path)
    assert report.downloaded == ("same",)
    reasons = {f.name: f.reason for f in report.failures}
    assert "scheme must stay http://" in reasons["to-file"]
    assert "not allowed" in reasons["to-host"]
    assert len(http_server.hits("/real")) == 1  # only the allowed redirect was followed
    with pytest.raises(UnsafeURLError, match="scheme must stay https"):
        check_redirect("https://example.org/a.tar", "http://example.org/a.tar")
    check_redirect("https://example.org/a.tar", "https://cdn.example.org/a.tar")


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_is_extracted_beside_itself_once(http_server, tmp_path):
    archive = _tar_gz({"train/a.mp4": b"aaa", "train/b.mp4": b"bbb"})
    item = _item("kinetics", http_server.serve("/k.tar.gz", archive), archive, dest="kinetics/k.tar.gz", extract=True)
    first = _get([item], tmp_path)
    assert first.extracted == ("kinetics",)
    assert (tmp_path / "kinetics" / "train" / "b.mp4").read_bytes() == b"bbb"
    # A second run neither downloads nor extracts again: a local edit survives.
    (tmp_path / "kinetics" / "train" / "a.mp4").write_bytes(b"edited")
    second = _get([item], tmp_path)
    assert second.skipped == ("kinetics",) and second.extracted == ()
    assert (tmp_path / "kinetics" / "train" / "a.mp4").read_bytes() == b"edited"
    assert len(http_server.hits("/k.tar.gz")) == 1


def test_malicious_archive_in_a_manifest_is_a_failure_record_and_nothing_escapes(http_server, tmp_path):
    archive = _tar_gz({"ok.txt": b"fine", "../../escaped.txt": b"pwned"})
    item = _item("evil", http_server.serve("/evil.tar.gz", archive), archive, dest="d/evil.tar.gz", extract=True)
    out = tmp_path / "data"
    report = _get([item], out)
    [failure] = report.failures
    assert "'../../escaped.txt'" in failure.reason
    assert _names(tmp_path) == ["data", "data/d", "data/d/evil.tar.gz"]


def test_manifest_loads_from_json_and_yaml_with_defaults(tmp_path):
    doc = {"version": 1, "items": [{"name": "a", "url": "https://example.org/a.zip", "dest": "a.zip"}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    (tmp_path / "m.yaml").write_text(
        "version: 1\nitems:\n  - {name: a, url: 'https://example.org/a.zip', dest: a.zip}\n"
    )
    assert load_manifest(tmp_path / "m.json") == load_manifest(tmp_path / "m.yaml")
    [item] = load_manifest(tmp_path / "m.json").items
    assert (item.size, item.sha256, item.extract) == (None, None, False)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"dest": "../outside.bin"}, "items[0].dest"),
        ({"dest": "/etc/passwd"}, "items[0].dest"),
        ({"url": "ftp://example.org/a.bin"}, "items[0].url"),
        ({"url": "../a.bin"}, "items[0].url"),  # a relative URL stays inside the manifest's folder
        ({"url": "/etc/passwd"}, "items[0].url"),
        ({"url": "https://example.org/train/pull ups.tar.gz"}, "items[0].url"),  # http.client would refuse it
        ({"sha256": "abc"}, "items[0].sha256"),
        ({"size": -1}, "items[0].size"),
        ({"extract": True}, "items[0].extract"),
        ({"mirror": "x"}, "items[0].mirror"),
    ],
)
def test_invalid_manifest_names_the_key(tmp_path, override, key):
    item = {"name": "a", "url": "https://example.org/a.bin", "dest": "a.bin", **override}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"version": 1, "items": [item]}))
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert err.value.key == key and str(path) in str(err.value)


def test_a_relative_url_names_the_file_beside_the_manifest_from_any_working_directory(tmp_path, monkeypatch):
    data = _payload(3_000)
    published = tmp_path / "published"
    (published / "sub dir").mkdir(parents=True)
    (published / "sub dir" / "clip.bin").write_bytes(data)
    manifest = published / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "items": [
        {"name": "clip", "url": "sub dir/clip.bin", "dest": "clip.bin", "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest()}]}))
    monkeypatch.chdir(tmp_path / "published" / "sub dir")  # resolved against the manifest, not the cwd
    [item] = load_manifest(Path("..") / "manifest.json").items
    assert item.url == (published / "sub dir" / "clip.bin").resolve().as_uri()
    report = _get([item], tmp_path / "out")
    assert report.ok and (tmp_path / "out" / "clip.bin").read_bytes() == data


def test_duplicate_destinations_and_bad_arguments_fail_before_any_work(http_server, tmp_path):
    with pytest.raises(ConfigError, match="appears twice"):
        Manifest(version=1, items=(_item("a", "https://x.org/a"), _item("b", "https://x.org/b", dest="files/a.bin")))
    item = _item("clip", http_server.serve("/clip", b"data"))
    for bad in ({"workers": 0}, {"retries": -1}, {"backoff": -1.0}):
        with pytest.raises(ConfigError) as err:
            _get([item], tmp_path / "out", **bad)
        assert err.value.key == next(iter(bad))
    assert http_server.log == [] and not (tmp_path / "out").exists()
    assert os.listdir(tmp_path) == []


def test_progress_bar_is_shown_only_when_asked(tmp_path, capsys):
    data = _payload(4_000)
    source = tmp_path / "clip.bin"
    source.write_bytes(data)
    _get([_item("clip", source.as_uri(), data)], tmp_path / "quiet")
    assert capsys.readouterr().err == ""
    _get([_item("clip", source.as_uri(), data)], tmp_path / "loud", progress=True)
    assert "download" in capsys.readouterr().err
