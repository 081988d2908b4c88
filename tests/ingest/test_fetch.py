"""Locating and downloading the export, served from a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ictcf.errors import DataNotFoundError, IctcfError, InputError
from ictcf.ingest import fetch
from ictcf.ingest.fetch import cache_local_export, cached_export_path, locate_export
from ictcf.settings import Settings
from tests.ingest.conftest import cf_block, make_line

GOOD_CONTENT = ("\r\n".join(make_line(n) for n in (1, 2, 3)) + "\r\n").encode("utf-8")
WRONG_CONTENT = GOOD_CONTENT.replace(b"Patient 3", b"Patient 9")


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {"/good.txt": GOOD_CONTENT, "/wrong.txt": WRONG_CONTENT}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def server() -> Iterator[str]:
    """A file server on 127.0.0.1 in a thread; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def published_is_good(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make GOOD_CONTENT the published export for these tests."""
    monkeypatch.setattr(fetch, "PUBLISHED_SHA256", hashlib.sha256(GOOD_CONTENT).hexdigest())
    monkeypatch.setattr(fetch, "PUBLISHED_SIZE", len(GOOD_CONTENT))


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/patient.txt"


def test_download_verifies_and_caches(server: str, published_is_good: None) -> None:
    settings = Settings()
    export = locate_export(settings, url=f"{server}/good.txt")
    assert export.published
    assert export.path == cached_export_path(settings)
    assert export.path.read_bytes() == GOOD_CONTENT
    assert export.sha256 == hashlib.sha256(GOOD_CONTENT).hexdigest()
    assert list(export.path.parent.glob("*.part")) == []


def test_cached_copy_is_reused(server: str, published_is_good: None) -> None:
    settings = Settings()
    locate_export(settings, url=f"{server}/good.txt")
    again = locate_export(settings, url=f"{server}/good.txt", download=False)
    assert again.published
    assert _Handler.requests == ["/good.txt"]


def test_wrong_hash_download_is_discarded(server: str, published_is_good: None) -> None:
    settings = Settings()
    with pytest.raises(IctcfError, match=r"is not the published iCTCF export .* It was discarded"):
        locate_export(settings, url=f"{server}/wrong.txt")
    assert not cached_export_path(settings).exists()
    assert list(settings.cache_dir.glob("*")) == []


def test_corrupted_cache_is_downloaded_again(server: str, published_is_good: None) -> None:
    settings = Settings()
    cached = cached_export_path(settings)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(WRONG_CONTENT)
    export = locate_export(settings, url=f"{server}/good.txt")
    assert export.path.read_bytes() == GOOD_CONTENT


def test_url_from_environment(
    server: str, published_is_good: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ICTCF_EXPORT_URL", f"{server}/good.txt")
    assert locate_export(Settings()).published
    assert _Handler.requests == ["/good.txt"]


def test_http_error_is_data_not_found(server: str) -> None:
    with pytest.raises(DataNotFoundError, match=r"Could not download .*missing.txt: Not Found"):
        locate_export(Settings(), url=f"{server}/missing.txt")


def test_offline_names_both_ways(closed_port_url: str) -> None:
    with pytest.raises(
        DataNotFoundError,
        match=r"Could not download the iCTCF export .* `ictcf data fetch --from PATH` or the \$ICTCF_EXPORT",
    ):
        locate_export(Settings(), url=closed_port_url)


def test_no_download_allowed() -> None:
    with pytest.raises(
        DataNotFoundError, match=r"downloading is disabled.*--from PATH or the \$ICTCF_EXPORT"
    ):
        locate_export(Settings(), download=False)


def test_local_file_not_published(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "subset.txt"
    path.write_bytes(WRONG_CONTENT)
    export = locate_export(Settings(), from_path=path, download=False)
    assert export.path == path
    assert not export.published
    assert export.sha256 == hashlib.sha256(WRONG_CONTENT).hexdigest()
    assert "subset.txt is not the published iCTCF export" in caplog.text
    assert cache_local_export(Settings(), export) == export


def test_local_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "export.txt"
    path.write_bytes(GOOD_CONTENT)
    monkeypatch.setenv("ICTCF_EXPORT", str(path))
    assert locate_export(Settings(), download=False).path == path


def test_local_published_file_is_cached(tmp_path: Path, published_is_good: None) -> None:
    path = tmp_path / "patient.txt"
    path.write_bytes(GOOD_CONTENT)
    settings = Settings()
    export = cache_local_export(settings, locate_export(settings, from_path=path))
    assert export.path == cached_export_path(settings)
    assert locate_export(settings, download=False).published


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"iCTCF export not found at .*nothere.txt"):
        locate_export(Settings(), from_path=tmp_path / "nothere.txt")


def test_real_cohort_file_is_not_published(cohort1_export: Path) -> None:
    export = locate_export(Settings(), from_path=cohort1_export, download=False)
    assert not export.published
    assert export.sha256 == "f0ac84e36180780ea865899122a0a1ed34e8906b682ec7414ddf02e8a80046c5"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"the file is empty\. Give the iCTCF patient export"),
        (b"\r\n\r\n", r"the file is empty"),
        (GOOD_CONTENT.decode("utf-8").encode("utf-16"), r"the file is UTF-16 or UTF-32 text"),
        (
            make_line(1, cf=cf_block([])).replace("Hypertension", "Hypertensión").encode("latin-1"),
            r"invalid UTF-8 byte 0xf3 at byte offset \d+ \(encoding is perhaps Latin-1",
        ),
        (b"Patient 1\x00\tx", r"the file contains NUL bytes"),
        (b"name,age\r\nPatient 1,55\r\n", r"the first line starts with 'name,age', but every line"),
        (b"Patient one\tx\n", r"the first line starts with 'Patient one\\tx'"),
        (GOOD_CONTENT[:-3] + "é".encode()[:1], r"the file ends in the middle of a UTF-8 character"),
    ],
    ids=["empty", "blank", "utf-16", "latin-1", "nul", "csv", "no-number", "truncated"],
)
def test_local_file_must_look_like_an_export(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "given.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"given.txt: {message}"):
        locate_export(Settings(), from_path=path, download=False)
    assert not cached_export_path(Settings()).exists()


def test_local_file_with_bom_and_leading_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf\r\n" + GOOD_CONTENT)
    assert not locate_export(Settings(), from_path=path, download=False).published


def test_unreadable_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.txt"
    path.write_bytes(GOOD_CONTENT)
    real_open = Path.open

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    # The tests run as root, which chmod 000 does not stop, so the error is injected.
    monkeypatch.setattr(Path, "open", open_)
    with pytest.raises(InputError, match=r"locked.txt: cannot read the file: Permission denied"):
        locate_export(Settings(), from_path=path, download=False)
    with pytest.raises(InputError, match=r"locked.txt: cannot read the file"):
        fetch.sha256_of_file(path)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_cached_files_honour_umask(
    tmp_path: Path, server: str, published_is_good: None, umask: int, mode: int
) -> None:
    settings = Settings()
    previous = os.umask(umask)
    try:
        downloaded = locate_export(settings, url=f"{server}/good.txt")
        assert stat.S_IMODE(downloaded.path.stat().st_mode) == mode
        downloaded.path.unlink()
        path = tmp_path / "patient.txt"
        path.write_bytes(GOOD_CONTENT)
        copied = cache_local_export(settings, locate_export(settings, from_path=path))
    finally:
        os.umask(previous)
    assert copied.path == cached_export_path(settings)
    assert stat.S_IMODE(copied.path.stat().st_mode) == mode
