"""Collect the files of an upload: a folder, a single file, a list of files, or zip archives.

Zip archives are extracted into a caller-given working folder with these guarantees:

* every entry name is checked before anything is written: absolute paths, drive letters,
  ``..`` components, backslashes used as separators, NUL bytes, symbolic links and duplicate
  names reject the whole upload;
* the entry count and the declared total size are checked from the central directory first,
  and the real uncompressed bytes and compression ratio are counted while streaming, so a
  zip bomb stops before the cap is written to disk;
* extraction goes to a staging folder that is removed on any error, so a rejected upload
  leaves nothing behind.

Zip files found inside a folder or inside another zip are extracted too, up to
:data:`MAX_ARCHIVE_DEPTH` levels, and share the same limits.
"""

from __future__ import annotations

import logging
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ictcf.errors import InputError

logger = logging.getLogger(__name__)

#: Levels of zip-inside-zip that are extracted (an upload zip holding ``Patient N.zip`` files).
MAX_ARCHIVE_DEPTH = 2
#: Bytes copied per step while extracting an entry.
COPY_CHUNK_BYTES = 1024 * 1024
#: Entries smaller than this (bytes) are exempt from the compression-ratio check: tiny files
#: such as empty text files can have any ratio without being a threat.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
#: File and folder names skipped when collecting (operating-system metadata, never images).
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"})


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied to one upload (all its archives together).

    Attributes
    ----------
    max_entries : int
        Most archive entries (files and folders). 3,000 covers a chest CT study with two
        600-slice thin reconstructions and several thick series.
    max_total_bytes : int
        Most uncompressed bytes written, 2 GiB by default: four 600-slice 512x512 16-bit
        series (about 315 MiB each) with room to spare.
    max_compression_ratio : float
        Highest uncompressed/compressed ratio of one entry larger than
        :data:`RATIO_CHECK_MIN_BYTES`. CT slices deflate about 2-10 to 1; a run of zeros
        deflates about 1000 to 1.
    """

    max_entries: int = 3000
    max_total_bytes: int = 2 * 1024**3
    max_compression_ratio: float = 100.0


class _Budget:
    """Running totals of one upload, shared by nested archives."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes_written = 0


def collect_input_files(
    path: Path | Sequence[Path],
    *,
    workdir: Path,
    limits: ArchiveLimits = ArchiveLimits(),
) -> list[Path]:
    """List the files of an upload, extracting zip archives safely.

    Parameters
    ----------
    path : Path or sequence of Path
        A folder (searched recursively), a single file, a zip archive, or a list of these.
    workdir : Path
        Folder that receives extracted archives (created if missing). Each archive goes to
        its own new subfolder.
    limits : ArchiveLimits, optional
        Caps on entry count, uncompressed bytes and compression ratio for the whole upload.

    Returns
    -------
    list of Path
        Regular files, sorted by path: files inside folders, the given files, and the
        extracted content of every zip (the zip files themselves are not listed). Hidden
        files and operating-system metadata (``.DS_Store``, ``__MACOSX``) are skipped.

    Raises
    ------
    InputError
        If a path does not exist, an archive is not a valid zip, an entry name is unsafe
        (absolute, ``..``, symbolic link, duplicate) or a cap is exceeded. Nothing extracted
        by this call is left in ``workdir`` after an error.
    """
    sources = [Path(path)] if isinstance(path, str | Path) else [Path(p) for p in path]
    workdir.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits)
    created: list[Path] = []
    try:
        result: list[Path] = []
        for source in sources:
            result.extend(_collect(source, workdir, budget, created, depth=0))
    except BaseException:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return sorted(set(result))


def _collect(
    source: Path, workdir: Path, budget: _Budget, created: list[Path], *, depth: int
) -> list[Path]:
    if source.is_symlink() and depth == 0 and not source.exists():
        raise InputError("symbolic link points to a missing file", path=source)
    if source.is_dir():
        files: list[Path] = []
        root = source.resolve()
        for candidate in sorted(source.rglob("*")):
            if _is_ignored(candidate.relative_to(source)):
                continue
            if candidate.is_symlink() and not candidate.resolve().is_relative_to(root):
                logger.warning("skipped a symbolic link that points outside the input folder")
                continue
            if candidate.is_file():
                files.extend(_collect_file(candidate, workdir, budget, created, depth=depth))
        return files
    if source.is_file():
        return _collect_file(source, workdir, budget, created, depth=depth)
    raise InputError("input path not found: check the path and try again", path=source)


def _is_ignored(relative: Path) -> bool:
    return any(part in IGNORED_NAMES or part.startswith(".") for part in relative.parts)


def _collect_file(
    path: Path, workdir: Path, budget: _Budget, created: list[Path], *, depth: int
) -> list[Path]:
    if path.suffix.lower() != ".zip" or not zipfile.is_zipfile(path):
        return [path]
    if depth >= MAX_ARCHIVE_DEPTH:
        raise InputError(
            f"zip archives are nested more than {MAX_ARCHIVE_DEPTH} levels deep: "
            "unpack the inner archives first",
            path=path,
        )
    target = workdir / f"{path.stem}-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    created.append(target)
    extracted = extract_zip(path, target, budget=budget)
    files: list[Path] = []
    for member in extracted:
        files.extend(_collect_file(member, target, budget, created, depth=depth + 1))
    return files


def _safe_member_path(name: str) -> PurePosixPath:
    """Validate one entry name and return it as a relative POSIX path."""
    if "\x00" in name:
        raise ValueError("contains a NUL byte")
    if "\\" in name:
        raise ValueError("uses a backslash, which some tools treat as a folder separator")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/"):
        raise ValueError("is an absolute path")
    if pure.parts and len(pure.parts[0]) == 2 and pure.parts[0][1] == ":":
        raise ValueError("starts with a drive letter")
    if any(part == ".." for part in pure.parts):
        raise ValueError("contains a '..' component that leaves the extraction folder")
    if not pure.parts or all(part == "." for part in pure.parts):
        raise ValueError("is empty")
    return pure


def _describe_entry(number: int) -> str:
    # Entry names can contain patient names, so messages give the position in the archive.
    return f"zip entry {number} (counted from 0 in the archive's listing)"


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def extract_zip(
    archive: Path,
    destination: Path,
    *,
    limits: ArchiveLimits | None = None,
    budget: _Budget | None = None,
) -> list[Path]:
    """Extract a zip archive into an empty folder after validating every entry.

    Parameters
    ----------
    archive : Path
        The zip file.
    destination : Path
        Existing folder that receives the entries.
    limits : ArchiveLimits, optional
        Caps for this archive alone (ignored when ``budget`` is given).

    Returns
    -------
    list of Path
        Extracted regular files (hidden files and ``__MACOSX`` metadata are not written).

    Raises
    ------
    InputError
        On an invalid archive, an unsafe entry name, a symbolic link or an exceeded cap;
        whatever was written into ``destination`` is removed first.
    """
    budget = budget or _Budget(limits or ArchiveLimits())
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"not a valid zip archive ({err})", path=archive) from err
    with handle:
        infos = handle.infolist()
        _check_entries(archive, infos, budget)
        root = destination.resolve()
        written: list[Path] = []
        try:
            for number, info in enumerate(infos):
                relative = _safe_member_path(info.filename)
                if info.is_dir() or _is_ignored(Path(*relative.parts)):
                    continue
                target = root.joinpath(*relative.parts)
                # Component-wise containment check (not a string prefix test).
                if not target.resolve().is_relative_to(root):
                    raise InputError(
                        f"{_describe_entry(number)} resolves outside the extraction folder",
                        path=archive,
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    _stream_entry(archive, handle, info, target, budget, number=number)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
                    raise InputError(
                        f"{_describe_entry(number)} could not be extracted ({err}); the "
                        "archive is damaged or uses an unsupported compression method",
                        path=archive,
                    ) from err
                written.append(target)
        except BaseException:
            for child in list(destination.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            raise
    logger.debug("extracted %d files from a zip archive", len(written))
    return written


def _check_entries(archive: Path, infos: list[zipfile.ZipInfo], budget: _Budget) -> None:
    """Reject the archive from its central directory before anything is written."""
    caps = budget.limits
    budget.entries += len(infos)
    if budget.entries > caps.max_entries:
        raise InputError(
            f"upload has {budget.entries} archive entries, more than the limit of "
            f"{caps.max_entries}: split it into smaller archives, or unpack it and import "
            "the folder",
            path=archive,
        )
    seen: set[str] = set()
    declared = budget.bytes_written
    for number, info in enumerate(infos):
        entry = _describe_entry(number)
        try:
            relative = _safe_member_path(info.filename)
        except ValueError as err:
            raise InputError(
                f"unsafe name of {entry}: it {err}; the whole upload is "
                "rejected, so rebuild the archive with relative paths",
                path=archive,
            ) from err
        if _is_symlink(info):
            raise InputError(
                f"{entry} is a symbolic link; the whole upload is "
                "rejected, so rebuild the archive without links",
                path=archive,
            )
        key = str(relative).rstrip("/")
        if key in seen:
            raise InputError(
                f"{entry} repeats the name of an earlier entry; rebuild the archive",
                path=archive,
            )
        seen.add(key)
        if info.flag_bits & 0x1:
            raise InputError(
                f"{entry} is encrypted: upload an unencrypted archive",
                path=archive,
            )
        declared += info.file_size
        if declared > caps.max_total_bytes:
            raise InputError(
                f"upload would unpack to more than {caps.max_total_bytes} bytes: split it "
                "into smaller archives, or unpack it and import the folder",
                path=archive,
            )
        if (
            info.file_size > RATIO_CHECK_MIN_BYTES
            and info.file_size > caps.max_compression_ratio * max(info.compress_size, 1)
        ):
            raise InputError(
                f"{entry} declares a compression ratio above "
                f"{caps.max_compression_ratio:g}:1, typical of a zip bomb; the upload is "
                "rejected",
                path=archive,
            )


def _stream_entry(
    archive: Path,
    handle: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    budget: _Budget,
    *,
    number: int,
) -> None:
    """Copy one entry in chunks, checking the real size and ratio before each write."""
    caps = budget.limits
    entry_bytes = 0
    ratio_cap = caps.max_compression_ratio * max(info.compress_size, 1)
    with handle.open(info) as reader, target.open("xb") as writer:
        while True:
            chunk = reader.read(COPY_CHUNK_BYTES)
            if not chunk:
                break
            entry_bytes += len(chunk)
            if budget.bytes_written + len(chunk) > caps.max_total_bytes:
                raise InputError(
                    f"upload unpacks to more than {caps.max_total_bytes} bytes; the archive "
                    "header understated its size, so the upload is rejected",
                    path=archive,
                )
            if entry_bytes > RATIO_CHECK_MIN_BYTES and entry_bytes > ratio_cap:
                raise InputError(
                    f"{_describe_entry(number)} inflates beyond a compression ratio of "
                    f"{caps.max_compression_ratio:g}:1, typical of a zip bomb; the upload is "
                    "rejected",
                    path=archive,
                )
            writer.write(chunk)
            budget.bytes_written += len(chunk)
