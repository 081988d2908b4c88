"""Obtain the iCTCF patient export: a local copy, the cache, or a verified download.

The full export (1,521 patients) has a public copy in the GitHub repository
``vincenzoconv99/Deep-learning-techniques-for-COVID-19-diagnosis-using-CT-images`` at commit
``9148a3e809996f419280dbc8444ea8291a040ea4``, path ``scraping_and_preprocessing/patient.txt``.
A download must match its published size and SHA-256 before it is moved into the cache.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ictcf.errors import DataNotFoundError, IctcfError, InputError
from ictcf.ingest.files import apply_default_mode
from ictcf.progress import progress_bar
from ictcf.settings import ENV_EXPORT, Settings

logger = logging.getLogger(__name__)

#: Environment variable that overrides the download URL (a mirror, or a local test server).
ENV_EXPORT_URL = "ICTCF_EXPORT_URL"

PUBLISHED_REPOSITORY = (
    "vincenzoconv99/Deep-learning-techniques-for-COVID-19-diagnosis-using-CT-images"
)
PUBLISHED_COMMIT = "9148a3e809996f419280dbc8444ea8291a040ea4"
PUBLISHED_PATH = "scraping_and_preprocessing/patient.txt"
#: Raw download URL of the published export, pinned to one commit.
PUBLISHED_URL = (
    f"https://raw.githubusercontent.com/{PUBLISHED_REPOSITORY}/{PUBLISHED_COMMIT}/{PUBLISHED_PATH}"
)
#: Size in bytes of the published export (1,521 patient lines).
PUBLISHED_SIZE = 3_916_308
#: SHA-256 of the published export.
PUBLISHED_SHA256 = "3dfcf35232439a70c44cb286a23c30d0c6e46d3c8d80795b109be1ca1c62abf4"

#: File name of the export in ``Settings().cache_dir``.
CACHE_FILE_NAME = "ictcf-patient-export.txt"
#: Seconds to wait for the server to connect or send the next block.
DOWNLOAD_TIMEOUT_S = 60.0
#: Bytes read per block while downloading and hashing.
CHUNK_SIZE = 1 << 16
#: Start of every line of the export: the patient id, then a tab.
EXPORT_LINE_START = re.compile(r"Patient \d+\t")
#: Characters of a wrong first line quoted in the error message.
QUOTED_LINE_CHARS = 40
#: Byte order marks of UTF-16 and UTF-32 text, which the export never has.
_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class ExportFile:
    """A located iCTCF export.

    Attributes
    ----------
    path : Path
        The file to import.
    sha256 : str
        SHA-256 of its bytes.
    published : bool
        Whether it is byte for byte the published export (see :data:`PUBLISHED_SHA256`).
    """

    path: Path
    sha256: str
    published: bool


def _read_error(path: Path, err: OSError) -> InputError:
    return InputError(
        f"cannot read the file: {err.strerror or err}. Check its permissions (`ls -l`) and "
        "that the disk or network share is available.",
        path=path,
    )


def sha256_of_file(path: Path) -> str:
    """Return the SHA-256 hex digest of the file at ``path``.

    Raises
    ------
    InputError
        If the file cannot be read (permissions, a folder, an I/O error).
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
                digest.update(block)
    except OSError as err:
        raise _read_error(path, err) from err
    return digest.hexdigest()


def check_export_file(path: Path) -> str:
    """Check that ``path`` looks like an iCTCF export and return its SHA-256.

    The file must be non-empty UTF-8 text (a UTF-8 byte order mark is allowed) whose first
    non-blank line starts with ``Patient N`` and a tab, as every line of the export does. The
    lines are checked fully when the file is imported.

    Raises
    ------
    InputError
        If the file cannot be read, is empty, is UTF-16 or another encoding than UTF-8, or its
        first line is not an export line. The message names the file and what to do.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    head = ""
    offset = 0
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
                if offset == 0 and block.startswith(_WIDE_BOMS):
                    raise InputError(
                        "the file is UTF-16 or UTF-32 text, but the iCTCF export is UTF-8. "
                        "Save it as UTF-8 and try again.",
                        path=path,
                    )
                digest.update(block)
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as err:
                    position = offset + err.start
                    raise InputError(
                        f"invalid UTF-8 byte 0x{block[err.start]:02x} at byte offset "
                        f"{position} (encoding is perhaps Latin-1 or GBK). The iCTCF export is "
                        "UTF-8: re-download it or convert it to UTF-8.",
                        path=path,
                    ) from err
                if not head.strip() or "\n" not in head.lstrip():
                    head += text
                offset += len(block)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as err:
                raise InputError(
                    "the file ends in the middle of a UTF-8 character (is it truncated?). "
                    "Re-download the export.",
                    path=path,
                ) from err
    except OSError as err:
        raise _read_error(path, err) from err
    first_line = head.lstrip("\ufeff\r\n\t ").split("\n", 1)[0].rstrip("\r")
    if not first_line:
        raise InputError(
            "the file is empty. Give the iCTCF patient export (one `Patient N` line per "
            "patient), or run `ictcf data fetch` without --from to download it.",
            path=path,
        )
    if "\x00" in first_line:
        raise InputError(
            "the file contains NUL bytes; it looks like UTF-16 or binary data, but the iCTCF "
            "export is UTF-8 text. Check that the right file was given.",
            path=path,
        )
    if not EXPORT_LINE_START.match(first_line):
        raise InputError(
            f"the first line starts with {first_line[:QUOTED_LINE_CHARS]!r}, but every line "
            "of the iCTCF patient export starts with 'Patient N' and a tab. Check that the "
            "right file was given.",
            path=path,
        )
    return digest.hexdigest()


def export_url(url: str | None = None) -> str:
    """Return the download URL: ``url``, else ``$ICTCF_EXPORT_URL``, else the published one."""
    return url or os.environ.get(ENV_EXPORT_URL) or PUBLISHED_URL


def cached_export_path(settings: Settings) -> Path:
    """Return where the verified export is cached: ``<ictcf home>/cache/ictcf-patient-export.txt``."""
    return settings.cache_dir / CACHE_FILE_NAME


def _local_export(path: Path) -> ExportFile:
    if not path.is_file():
        raise DataNotFoundError(
            f"iCTCF export not found at {path}. Check the path given with --from or "
            f"${ENV_EXPORT}, or run `ictcf data fetch` without --from to download it."
        )
    sha256 = check_export_file(path)
    published = sha256 == PUBLISHED_SHA256
    if not published:
        logger.warning(
            "%s is not the published iCTCF export (SHA-256 %s, published %s); using it as "
            "given and recording its hash",
            path.name,
            sha256,
            PUBLISHED_SHA256,
        )
    return ExportFile(path=path, sha256=sha256, published=published)


def _read_blocks(response: BinaryIO) -> Iterator[bytes]:
    while block := response.read(CHUNK_SIZE):
        yield block


def download_export(
    destination: Path,
    *,
    url: str | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    progress: bool = False,
) -> ExportFile:
    """Download the export, verify its size and SHA-256, and move it to ``destination``.

    The file is streamed to a temporary file next to ``destination`` and moved only after it
    is verified, so ``destination`` never contains a partial or wrong file.

    Parameters
    ----------
    destination : Path
        Final path of the verified file; its folder is created.
    url : str, optional
        Download URL. Default: ``$ICTCF_EXPORT_URL`` or :data:`PUBLISHED_URL`.
    timeout_s : float, default 60
        Seconds to wait for the connection and for each block.
    progress : bool, default False
        Show a progress bar in bytes on stderr.

    Returns
    -------
    ExportFile
        With ``published=True``.

    Raises
    ------
    DataNotFoundError
        If the server cannot be reached, times out or answers with an HTTP error.
    IctcfError
        If the downloaded file's size or SHA-256 differs from the published export's.
    """
    source = export_url(url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading the iCTCF export from %s", source)
    digest = hashlib.sha256()
    size = 0
    handle, temporary_name = tempfile.mkstemp(
        prefix=".download-", suffix=".part", dir=destination.parent
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as output:
            try:
                with urllib.request.urlopen(source, timeout=timeout_s) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else PUBLISHED_SIZE
                    for block in progress_bar(
                        _read_blocks(response),
                        enabled=progress,
                        description="Downloading export",
                        total=max(1, total // CHUNK_SIZE),
                        unit="block",
                    ):
                        output.write(block)
                        digest.update(block)
                        size += len(block)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                raise DataNotFoundError(
                    f"Could not download the iCTCF export from {source}: {reason}. "
                    "Without network access, give a local copy with `ictcf data fetch --from "
                    f"PATH` or the ${ENV_EXPORT} environment variable."
                ) from err
        sha256 = digest.hexdigest()
        if size != PUBLISHED_SIZE or sha256 != PUBLISHED_SHA256:
            raise IctcfError(
                f"The file downloaded from {source} is not the published iCTCF export "
                f"({size} bytes, SHA-256 {sha256}; expected {PUBLISHED_SIZE} bytes, SHA-256 "
                f"{PUBLISHED_SHA256}). It was discarded. Check --url / ${ENV_EXPORT_URL}, or "
                "give a local copy with --from PATH."
            )
        apply_default_mode(temporary)
        temporary.replace(destination)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("export verified and cached (SHA-256 %s)", sha256)
    return ExportFile(path=destination, sha256=sha256, published=True)


def locate_export(
    settings: Settings,
    *,
    from_path: Path | str | None = None,
    download: bool = True,
    url: str | None = None,
    progress: bool = False,
) -> ExportFile:
    """Return the iCTCF export to import, downloading it only when no copy is available.

    Order of preference: ``from_path``; ``settings.export_path`` (``$ICTCF_EXPORT``); the
    verified copy in the cache; a download (when ``download`` is true). A local file whose
    hash differs from the published export is accepted with a logged warning and
    ``published=False`` (a cohort subset, for example). A cached file with a wrong hash is
    removed and downloaded again.

    Parameters
    ----------
    settings : Settings
        Provides ``export_path`` and ``cache_dir``.
    from_path : Path or str, optional
        A local copy given by the user; takes precedence over everything else.
    download : bool, default True
        Allow a download when no local or cached copy exists.
    url : str, optional
        Download URL. Default: ``$ICTCF_EXPORT_URL`` or :data:`PUBLISHED_URL`.
    progress : bool, default False
        Show a progress bar while downloading.

    Returns
    -------
    ExportFile

    Raises
    ------
    InputError
        If a given local file cannot be read, or is not UTF-8 text starting with an export
        line (see :func:`check_export_file`).
    DataNotFoundError
        If a given local file does not exist, or no copy is available and the download is not
        allowed or fails. The message names both ways to provide the file.
    IctcfError
        If a download completes but is not the published file.
    """
    local = Path(from_path) if from_path is not None else settings.export_path
    if local is not None:
        return _local_export(Path(local).expanduser())

    cached = cached_export_path(settings)
    if cached.is_file():
        sha256 = sha256_of_file(cached)
        if sha256 == PUBLISHED_SHA256:
            logger.debug("using the cached export")
            return ExportFile(path=cached, sha256=sha256, published=True)
        logger.warning(
            "cached export has SHA-256 %s, not the published %s; removing it",
            sha256,
            PUBLISHED_SHA256,
        )
        cached.unlink()

    if not download:
        raise DataNotFoundError(
            "The iCTCF export is not available locally and downloading is disabled. Run "
            f"`ictcf data fetch` to download it, or give a local copy with --from PATH or "
            f"the ${ENV_EXPORT} environment variable."
        )
    return download_export(cached, url=url, progress=progress)


def cache_local_export(settings: Settings, export: ExportFile) -> ExportFile:
    """Copy a published export into the cache so later runs find it without ``--from``.

    A file that is not the published export is returned unchanged and not cached, so the
    cache only ever contains the verified published file.
    """
    if not export.published:
        return export
    cached = cached_export_path(settings)
    if cached.resolve() == export.path.resolve():
        return export
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=".copy-", suffix=".part", dir=cached.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        try:
            shutil.copyfile(export.path, temporary)
        except OSError as err:
            raise IctcfError(
                f"could not copy {export.path} into the cache folder {cached.parent}: "
                f"{err.strerror or err}. Check the free space and permissions there, or set "
                "$ICTCF_HOME to another folder."
            ) from err
        if sha256_of_file(temporary) != export.sha256:
            raise InputError(
                "changed while it was being copied into the cache; try again.", path=export.path
            )
        apply_default_mode(temporary)
        temporary.replace(cached)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportFile(path=cached, sha256=export.sha256, published=True)
