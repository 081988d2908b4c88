"""Obtain the iCTCF patient export: a local copy, the cache, or a verified download.

The full export (1,521 patients) has a public copy in the GitHub repository
``vincenzoconv99/Deep-learning-techniques-for-COVID-19-diagnosis-using-CT-images`` at commit
``9148a3e809996f419280dbc8444ea8291a040ea4``, path ``scraping_and_preprocessing/patient.txt``.
A download must match its published size and SHA-256 before it is moved into the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ictcf.errors import DataNotFoundError, IctcfError, InputError
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


def sha256_of_file(path: Path) -> str:
    """Return the SHA-256 hex digest of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
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
    sha256 = sha256_of_file(path)
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
        shutil.copyfile(export.path, temporary)
        if sha256_of_file(temporary) != export.sha256:
            raise InputError(
                "changed while it was being copied into the cache; try again.", path=export.path
            )
        temporary.replace(cached)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportFile(path=cached, sha256=export.sha256, published=True)
