"""Safe collection of upload files: folders, zip archives, traversal and bomb limits."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from ictcf.errors import InputError
from ictcf.imaging.archive import ArchiveLimits, collect_input_files


def _zip(path: Path, entries: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_folder_recursive_skips_metadata(tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "series" / "sub").mkdir(parents=True)
    (source / "series" / "a.dcm").write_bytes(b"a")
    (source / "series" / "sub" / "b.dcm").write_bytes(b"b")
    (source / ".DS_Store").write_bytes(b"x")
    (source / "__MACOSX").mkdir()
    (source / "__MACOSX" / "._a.dcm").write_bytes(b"x")
    files = collect_input_files(source, workdir=tmp_path / "work")
    assert [p.name for p in files] == ["a.dcm", "b.dcm"]


def test_single_file_and_list(tmp_path: Path) -> None:
    first = tmp_path / "one.dcm"
    second = tmp_path / "two.dcm"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    assert collect_input_files(first, workdir=tmp_path / "w") == [first]
    assert collect_input_files([second, first], workdir=tmp_path / "w") == [first, second]


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothere: input path not found"):
        collect_input_files(tmp_path / "nothere", workdir=tmp_path / "w")


def test_zip_extracted_with_nested_patient_zips(tmp_path: Path) -> None:
    inner = _zip(
        tmp_path / "Patient 7.zip", {"IMG-0001-00001.jpg": b"j1", "IMG-0001-00002.jpg": b"j2"}
    )
    outer = _zip(
        tmp_path / "upload.zip", {"Patient 7.zip": inner.read_bytes(), "notes/readme.txt": b"r"}
    )
    work = tmp_path / "work"
    files = collect_input_files(outer, workdir=work)
    assert sorted(p.name for p in files) == [
        "IMG-0001-00001.jpg",
        "IMG-0001-00002.jpg",
        "readme.txt",
    ]
    assert all(p.resolve().is_relative_to(work.resolve()) for p in files)


def test_traversal_and_absolute_entries_rejected(tmp_path: Path) -> None:
    """B82: '../../evil.txt' and '/tmp/evil.txt' reject the upload; nothing escapes."""
    archive = _zip(
        tmp_path / "bad.zip",
        {"series/1.dcm": b"ok", "../../evil.txt": b"x", "/tmp/evil.txt": b"x"},
    )
    work = tmp_path / "up" / "work"
    with pytest.raises(InputError, match=r"bad\.zip: unsafe name of zip entry 1 \(counted from 0"):
        collect_input_files(archive, workdir=work)
    assert _all_files(work) == []
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "up" / "evil.txt").exists()


def test_absolute_entry_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "abs.zip", {"/tmp/evil.txt": b"x"})
    with pytest.raises(InputError, match="is an absolute path"):
        collect_input_files(archive, workdir=tmp_path / "work")


def test_prefix_trick_aborts_whole_upload(tmp_path: Path) -> None:
    """B83: '../abc-extra/x.dcm' beside a good entry: nothing of the good entry is kept."""
    work = tmp_path / "up" / "abc"
    archive = _zip(tmp_path / "trick.zip", {"good/1.dcm": b"ok", "../abc-extra/x.dcm": b"x"})
    with pytest.raises(InputError, match=r"'\.\.' component"):
        collect_input_files(archive, workdir=work)
    assert _all_files(work) == []
    assert not (tmp_path / "up" / "abc-extra").exists()


def test_symlink_entry_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        info = zipfile.ZipInfo("series/link.dcm")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="is a symbolic link"):
        collect_input_files(archive, workdir=tmp_path / "work")


def test_zip_bomb_rejected_before_writing(tmp_path: Path) -> None:
    """B85: one entry of 1 GiB zeros in a ~1 MB zip is rejected by the ratio cap."""
    archive = tmp_path / "bomb.zip"
    chunk = bytes(16 * 1024 * 1024)
    with (
        zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as handle,
        handle.open("zeros.bin", "w", force_zip64=True) as entry,
    ):
        for _ in range(64):
            entry.write(chunk)
    assert archive.stat().st_size < 8 * 1024 * 1024
    work = tmp_path / "work"
    with pytest.raises(InputError, match="compression ratio above 100:1"):
        collect_input_files(archive, workdir=work)
    assert _all_files(work) == []


def test_lying_header_stopped_while_streaming(tmp_path: Path) -> None:
    """A central directory that understates sizes is caught by the streaming byte count."""
    archive = _zip(tmp_path / "big.zip", {"a.bin": bytes(3 * 1024 * 1024)})
    limits = ArchiveLimits(max_total_bytes=2 * 1024 * 1024, max_compression_ratio=1e9)
    raw = bytearray(archive.read_bytes())
    # Rewrite the declared uncompressed size (central directory record) to 10 bytes.
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    work = tmp_path / "work"
    with pytest.raises(InputError, match=r"more than 2097152 bytes|could not be extracted"):
        collect_input_files(archive, workdir=work, limits=limits)
    assert _all_files(work) == []


def test_too_many_entries_rejected(tmp_path: Path) -> None:
    """B85: 5000 tiny entries exceed the default entry cap before anything is written."""
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for index in range(5000):
            handle.writestr(f"f{index}.dcm", b"")
    work = tmp_path / "work"
    with pytest.raises(
        InputError, match="upload has 5000 archive entries, more than the limit of 3000"
    ):
        collect_input_files(archive, workdir=work)
    assert _all_files(work) == []


def test_total_size_cap(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "two.zip", {"a.bin": b"x" * 600, "b.bin": b"y" * 600}, method=zipfile.ZIP_STORED
    )
    with pytest.raises(InputError, match="more than 1000 bytes"):
        collect_input_files(
            archive, workdir=tmp_path / "w", limits=ArchiveLimits(max_total_bytes=1000)
        )


def test_fake_zip_kept_as_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip")
    assert collect_input_files(fake, workdir=tmp_path / "w") == [fake]


def test_corrupt_entry_cleans_up(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "c.zip", {"a.dcm": b"a" * 5000, "b.dcm": b"b" * 5000})
    raw = bytearray(archive.read_bytes())
    second = raw.find(b"PK\x03\x04", 10)
    raw[second - 20 : second - 10] = b"\x00" * 10  # damage the end of the first entry's data
    archive.write_bytes(bytes(raw))
    work = tmp_path / "work"
    with pytest.raises(
        InputError,
        match=r"c\.zip: zip entry 0 \(counted from 0 in the archive's listing\) could not be extracted",
    ):
        collect_input_files(archive, workdir=work)
    assert _all_files(work) == []
