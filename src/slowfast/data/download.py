"""Reproducible, safe download of the files a manifest names, with optional archive extraction.

A manifest (JSON, or YAML) lists every file a dataset needs::

    {"version": 1,
     "items": [{"name": "kinetics-mini",
                "url": "https://example.org/kinetics-mini.tar.gz",
                "size": 1234567,                      # optional, bytes
                "sha256": "<64 hex digits>",          # optional
                "dest": "kinetics/kinetics-mini.tar.gz",  # relative to the data directory
                "extract": true}]}                    # optional, default false

A ``url`` without a scheme is a path relative to the manifest's folder (``"kinetics.tar.gz"`` beside
``manifest.json``): a manifest published with its files names no machine-specific path, so its hash, and every
DVC stage below it, are the same on every clone.

:func:`download_manifest` fetches the items in parallel. Each item is written to ``<dest>.part``, verified (sha256
when given, size when given) and only then renamed to ``<dest>``, so a file under its final name is always
complete; a ``.part`` left by an interrupted run is resumed with an HTTP ``Range`` request (a server that ignores
``Range`` answers with the whole file, which then replaces the partial one). Connection errors, dropped
connections and 5xx answers are retried with exponential backoff. An item whose final file exists and verifies is
skipped without any network access, and an archive already extracted (a marker file beside it records which
archive) is not extracted again, so re-runs are cheap and idempotent. A failing item becomes a
:class:`FailureRecord` in the :class:`DownloadReport`; the other items still finish.

Only the URLs of the manifest are fetched, and only over https or from local ``file://`` paths. Redirects must
keep the scheme (an https -> http downgrade is refused). Plain http is refused, except for the hosts passed
explicitly as ``allow_insecure_hosts`` -- which exists for tests against a server on 127.0.0.1 and nothing else.

HTTP uses the standard library (:mod:`urllib`): ranges, redirects and streaming are all it takes, and one
redirect hook is enough to enforce the scheme policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import yaml
from tqdm import tqdm

from slowfast.config import ConfigError, from_mapping, require
from slowfast.data.archive import TAR_SUFFIXES, ZIP_SUFFIXES, ArchiveError, is_archive, safe_extract
from slowfast.utils.io import write_json_atomic

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: what an HTTP request line cannot carry (http.client refuses it): caught when the manifest loads, not mid-download
_URL_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")


@dataclasses.dataclass(frozen=True)
class ManifestItem:
    """One file to fetch: where from, where to (relative to the data directory) and how to verify it."""

    name: str
    url: str
    dest: str
    size: int | None = None
    sha256: str | None = None
    extract: bool = False

    def __post_init__(self) -> None:
        require(bool(self.name.strip()), "name", "must be a non-empty string")
        scheme = urlsplit(self.url).scheme
        require(scheme in ("https", "file", "http"), "url", f"scheme {scheme!r} is not allowed; allowed: https, file")
        require(_URL_UNSENDABLE.search(self.url) is None, "url",
                f"{self.url!r} holds a space or control character; percent-encode it (a space is %20)")
        parts = self.dest.split("/")
        require(
            bool(self.dest) and not self.dest.startswith("/") and "\\" not in self.dest
            and ".." not in parts and posixpath.normpath(self.dest) not in (".", ""),
            "dest",
            f"got {self.dest!r}; must be a relative POSIX path inside the data directory (no leading '/', no '..')",
        )
        require(self.size is None or self.size >= 0, "size", f"got {self.size}; must be >= 0")
        require(
            self.sha256 is None or _SHA256.fullmatch(self.sha256) is not None,
            "sha256",
            f"got {self.sha256!r}; must be 64 hexadecimal digits",
        )
        require(
            not self.extract or is_archive(self.dest),
            "extract",
            f"dest {self.dest!r} is not an archive; allowed suffixes: {', '.join(TAR_SUFFIXES + ZIP_SUFFIXES)}",
        )


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The files a dataset is made of (format version 1)."""

    version: int
    items: tuple[ManifestItem, ...]

    def __post_init__(self) -> None:
        require(self.version == 1, "version", f"got {self.version}; allowed: 1")
        for key in ("name", "dest"):
            seen: set[str] = set()
            for i, item in enumerate(self.items):
                value = posixpath.normpath(getattr(item, key)) if key == "dest" else item.name
                require(value not in seen, f"items[{i}].{key}", f"{value!r} appears twice; must be unique")
                seen.add(value)


@dataclasses.dataclass(frozen=True)
class FailureRecord:
    """An item that could not be fetched, verified or extracted, and why."""

    name: str
    url: str
    reason: str


@dataclasses.dataclass(frozen=True)
class DownloadReport:
    """What :func:`download_manifest` did, item names in manifest order."""

    downloaded: tuple[str, ...]
    skipped: tuple[str, ...]
    extracted: tuple[str, ...]
    failures: tuple[FailureRecord, ...]
    bytes_transferred: int

    @property
    def ok(self) -> bool:
        return not self.failures


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest (``.json``, else YAML); errors name the key and the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a valid manifest file: {exc}") from None
    try:
        return from_mapping(Manifest, _resolve_relative_urls(data, path))
    except ConfigError as exc:
        raise ConfigError(exc.key, f"{exc.message} (manifest {path})") from None


def _resolve_relative_urls(data: Any, path: Path) -> Any:
    """Items whose ``url`` is a relative path (no scheme) get the ``file://`` URL of that path in the manifest's
    folder, so a manifest published beside its files names no machine-specific path (the synthetic one does).
    A relative URL stays inside that folder: no leading ``/``, no ``..``, no backslash."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return data  # validation below names what is wrong
    base = path.resolve().parent.as_uri() + "/"
    items = []
    for i, item in enumerate(data["items"]):
        url = item.get("url") if isinstance(item, dict) else None
        if isinstance(url, str) and url and not urlsplit(url).scheme:
            parts = url.split("/")
            require(
                not url.startswith("/") and "\\" not in url and ".." not in parts and "" not in parts
                and "?" not in url and "#" not in url,
                f"items[{i}].url",
                f"got {url!r}; a relative URL must be a path inside the manifest's folder (no leading '/', no '..')",
            )
            item = {**item, "url": urljoin(base, urllib.request.pathname2url(url))}
        items.append(item)
    return {**data, "items": items}


class UnsafeURLError(ValueError):
    """A URL outside the download policy (scheme, host or redirect)."""


def check_url(url: str, *, allow_insecure_hosts: Collection[str] = ()) -> None:
    """Raise :class:`UnsafeURLError` unless ``url`` may be fetched.

    Allowed: ``https://host/...``, ``file:///local/path``, and ``http://host/...`` only when ``host`` is in
    ``allow_insecure_hosts`` (meant for tests against a local server).
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return
    if parts.scheme == "http" and parts.hostname and parts.hostname in allow_insecure_hosts:
        return
    raise UnsafeURLError(
        f"{url!r} is not allowed; allowed: https://host/..., file:///absolute/path"
        + (f", http:// only to {', '.join(sorted(allow_insecure_hosts))}" if allow_insecure_hosts else "")
    )


def check_redirect(old_url: str, new_url: str, *, allow_insecure_hosts: Collection[str] = ()) -> None:
    """Raise :class:`UnsafeURLError` unless a redirect from ``old_url`` to ``new_url`` keeps the scheme and policy."""
    old, new = urlsplit(old_url).scheme, urlsplit(new_url).scheme
    if new != old:
        raise UnsafeURLError(f"redirect from {old}:// to {new_url!r} refused: the scheme must stay {old}://")
    check_url(new_url, allow_insecure_hosts=allow_insecure_hosts)


class _PolicyRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_insecure_hosts: Collection[str]):
        self.allow_insecure_hosts = allow_insecure_hosts

    def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001, ANN201 (urllib's signature)
        location = headers.get("Location") or headers.get("URI")
        if location:  # checked before urllib's own rules, so the refusal names this policy
            new_url = urljoin(req.full_url, location)
            check_redirect(req.full_url, new_url, allow_insecure_hosts=self.allow_insecure_hosts)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


class _Retryable(Exception):
    """A transient failure (connection error, dropped connection, 5xx): try again after a pause."""


class _Restart(_Retryable):
    """The partial file does not fit what the server serves: delete it and start over."""


class _Failed(Exception):
    """A permanent failure of one item; the message is the reason recorded."""


# Transient network errors; plain OSErrors (disk full, permission) are not retried.
_NETWORK_ERRORS = (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError)


@dataclasses.dataclass
class _Run:
    opener: urllib.request.OpenerDirector
    retries: int
    backoff: float
    timeout: float
    bar: Any
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    bytes_transferred: int = 0

    def count(self, n: int) -> None:
        with self.lock:
            self.bytes_transferred += n
            self.bar.update(n)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, item: ManifestItem) -> str | None:
    """The reason ``path`` is not the file ``item`` describes, or None when it is."""
    actual = path.stat().st_size
    if item.size is not None and actual != item.size:
        return f"size mismatch: expected {item.size} bytes, got {actual}"
    if item.sha256 is not None and (digest := _sha256(path)) != item.sha256.lower():
        return f"sha256 mismatch: expected {item.sha256.lower()}, got {digest}"
    return None


def _open_source(item: ManifestItem, offset: int, run: _Run) -> tuple[BinaryIO, int, int | None]:
    """Open the item's URL at ``offset``; return (stream, offset actually served, bytes the stream should hold)."""
    parts = urlsplit(item.url)
    if parts.scheme == "file":
        src = open(urllib.request.url2pathname(parts.path), "rb")  # noqa: SIM115 (closed by the caller)
        total = os.fstat(src.fileno()).st_size
        offset = min(offset, total)
        src.seek(offset)
        return src, offset, total - offset
    headers = {"User-Agent": "slowfast-download/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = run.opener.open(urllib.request.Request(item.url, headers=headers), timeout=run.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        reason = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(reason) from None
        if exc.code == 416:  # the .part does not fit the remote file (any more): start over
            raise _Restart(f"{reason} for a partial file of {offset} bytes; restarting") from None
        raise _Failed(reason) from None
    length = resp.headers.get("Content-Length")
    length = int(length) if length is not None and length.isdigit() else None
    if offset and resp.status == 206:
        served = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if served is None or int(served.group(1)) != offset:
            resp.close()
            raise _Restart(f"server answered Range {offset}- with {resp.headers.get('Content-Range')!r}")
        return resp, offset, length
    if offset:
        log.info("%s: server ignored the Range request; downloading from the start", item.name)
    return resp, 0, length


def _fetch_once(item: ManifestItem, part: Path, run: _Run) -> None:
    """One attempt: append the missing bytes of ``item`` to ``part`` (or rewrite it when the server has no Range)."""
    offset = part.stat().st_size if part.exists() else 0
    if item.size is not None and offset >= item.size:
        if offset == item.size:
            return  # complete already; verification decides
        offset = 0
    try:
        src, offset, expected = _open_source(item, offset, run)
        written = 0
        with src, open(part, "ab" if offset else "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
                run.count(len(chunk))
                if item.size is not None and offset + written > item.size:
                    raise _Failed(f"size mismatch: expected {item.size} bytes, the source sends more")
            out.flush()
            os.fsync(out.fileno())
    except _NETWORK_ERRORS as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from None
    if expected is not None and written < expected:
        raise _Retryable(f"connection dropped after {offset + written} of {offset + expected} bytes")


def _fetch_with_retries(item: ManifestItem, part: Path, run: _Run) -> None:
    for attempt in range(run.retries + 1):
        try:
            _fetch_once(item, part, run)
            break
        except _Retryable as exc:
            last = exc
            if isinstance(exc, _Restart):
                part.unlink(missing_ok=True)
            log.warning("%s: attempt %d/%d failed: %s", item.name, attempt + 1, run.retries + 1, exc)
            if attempt < run.retries:
                time.sleep(run.backoff * 2**attempt)
        except _Failed:
            part.unlink(missing_ok=True)
            raise
    else:
        raise _Failed(f"gave up after {run.retries + 1} attempts: {last}")  # the .part stays for a later resume


def _download(item: ManifestItem, final: Path, run: _Run) -> None:
    """Fetch ``item`` into ``<final>.part`` (resuming it if present), verify, rename to ``final``."""
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    resumed = part.exists()
    _fetch_with_retries(item, part, run)
    reason = _verify(part, item)
    if reason is not None and resumed:
        # The partial file may be left over from a different remote file: one clean try before giving up.
        log.warning("%s: resumed download failed verification (%s); downloading from the start", item.name, reason)
        part.unlink()
        _fetch_with_retries(item, part, run)
        reason = _verify(part, item)
    if reason is not None:
        part.unlink()
        raise _Failed(reason)
    os.replace(part, final)


def _extract_once(item: ManifestItem, final: Path) -> bool:
    """Extract the archive beside itself unless the marker says this very archive was extracted already."""
    marker = final.with_name(f".{final.name}.extracted")
    st = final.stat()
    stamp = {"archive": final.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": item.sha256}
    try:
        if json.loads(marker.read_text(encoding="utf-8")) == stamp:
            return False
    except (OSError, ValueError):
        pass
    safe_extract(final, final.parent)
    write_json_atomic(marker, stamp)
    return True


def _process(item: ManifestItem, out_dir: Path, run: _Run) -> tuple[str, bool]:
    final = out_dir / item.dest
    status = "skipped"
    reason = _verify(final, item) if final.is_file() else "missing"
    if reason is not None:
        if final.is_file():
            log.warning("%s: existing %s is not the expected file (%s); downloading again", item.name, final, reason)
            final.unlink()
        _download(item, final, run)
        status = "downloaded"
    return status, item.extract and _extract_once(item, final)


def download_manifest(
    manifest: Manifest,
    out_dir: str | os.PathLike[str],
    *,
    workers: int = 4,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    allow_insecure_hosts: Collection[str] = (),
) -> DownloadReport:
    """Fetch, verify and (when asked) extract every item of ``manifest`` under ``out_dir``.

    ``workers`` items are fetched at once; each retryable failure waits ``backoff * 2**attempt`` seconds before
    one of ``retries`` further attempts; ``timeout`` bounds each network wait. ``allow_insecure_hosts`` lets plain
    http reach the hosts named (tests against 127.0.0.1 only). Invalid arguments and URLs outside the policy raise
    :class:`ConfigError` before anything is fetched; failures of single items are reported, not raised.
    """
    require(isinstance(workers, int) and workers >= 1, "workers", f"got {workers!r}; must be an integer >= 1")
    require(isinstance(retries, int) and retries >= 0, "retries", f"got {retries!r}; must be an integer >= 0")
    require(backoff >= 0, "backoff", f"got {backoff!r}; must be >= 0 seconds")
    require(timeout > 0, "timeout", f"got {timeout!r}; must be > 0 seconds")
    allow_insecure_hosts = tuple(allow_insecure_hosts)
    for i, item in enumerate(manifest.items):
        try:
            check_url(item.url, allow_insecure_hosts=allow_insecure_hosts)
        except UnsafeURLError as exc:
            raise ConfigError(f"items[{i}].url", str(exc)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = [item.size for item in manifest.items]
    total = sum(known) if all(s is not None for s in known) else None
    with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=not progress) as bar:
        run = _Run(urllib.request.build_opener(_PolicyRedirects(allow_insecure_hosts)), retries, backoff, timeout, bar)

        def work(item: ManifestItem) -> tuple[str, bool] | FailureRecord:
            try:
                return _process(item, out, run)
            except (_Failed, ArchiveError, UnsafeURLError) as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 -- one item's failure must not stop the others
                reason = f"{type(exc).__name__}: {exc}"
            log.error("%s: %s", item.name, reason)
            return FailureRecord(item.name, item.url, reason)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, manifest.items))
    done = [(item.name, r) for item, r in zip(manifest.items, results) if not isinstance(r, FailureRecord)]
    return DownloadReport(
        downloaded=tuple(name for name, (status, _) in done if status == "downloaded"),
        skipped=tuple(name for name, (status, _) in done if status == "skipped"),
        extracted=tuple(name for name, (_, extracted) in done if extracted),
        failures=tuple(r for r in results if isinstance(r, FailureRecord)),
        bytes_transferred=run.bytes_transferred,
    )

