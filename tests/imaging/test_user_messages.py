"""Imaging messages name files by upload position and hash, and read as advice for users."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import warnings
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner, Result
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import RLELossless

from ictcf.cli.main import cli
from ictcf.db import open_database
from ictcf.errors import DataNotFoundError, InputError
from ictcf.imaging.export_slices import ORDER_FILE_NAMES, ORDER_INFERIOR_TO_SUPERIOR
from ictcf.imaging.ingest_ct import import_dicom, import_nifti
from ictcf.imaging.nifti import read_nifti_volume
from ictcf.imaging.representative import SliceCandidate, choose_representative_slices
from ictcf.imaging.upload_files import UploadFileNames, names_kept_out, scrub_quoted_values
from tests.imaging.ingest_fixtures import (
    add_patient,
    database_text,
    phantom_volume,
    table_counts,
    write_ct_series,
    write_grey_series,
)

#: A file and folder name that stands for a patient's name.
PATIENT_NAME = "DOE_JANE"


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--no-progress", *args], catch_exceptions=True)


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'ictcf.sqlite3'}"


def _named_upload(tmp_path: Path, n_slices: int = 3) -> list[Path]:
    """Write a DICOM series whose folder and file names contain ``PATIENT_NAME``."""
    folder = tmp_path / PATIENT_NAME
    written = write_ct_series(tmp_path / "series", phantom_volume(n_slices))
    folder.mkdir()
    renamed = []
    for number, path in enumerate(sorted(written)):
        target = folder / f"{PATIENT_NAME}_{number}.dcm"
        path.rename(target)
        renamed.append(target)
    return renamed


def _write_nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([2.0, 2.0, 5.0, 1.0])), path)
    return path


def _ct_volume() -> np.ndarray:
    # NIfTI axes are (x, y, z); the phantom is (z, rows, columns).
    return np.transpose(phantom_volume(6).astype(np.float32), (2, 1, 0))


def _mask_like_volume() -> np.ndarray:
    """Return float values between -115 and 342, like a resampled 0/255 lung mask."""
    rng = np.random.default_rng(7)
    return rng.uniform(-115.0, 342.0, size=(32, 32, 6))


# --- file names ---------------------------------------------------------------------------


def _truncate_compressed(path: Path) -> str:
    """Re-encode ``path`` as RLE Lossless, cut it in half and return its SHA-256."""
    dataset = pydicom.dcmread(path)
    dataset.compress(RLELossless)
    dataset.save_as(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_dicom_error_has_no_name(database: str, tmp_path: Path) -> None:
    files = _named_upload(tmp_path)
    digest = _truncate_compressed(files[2])

    result = _run(
        "-vv", "import", "dicom", str(tmp_path / PATIENT_NAME), "--patient", "P2",
        "--create-patient", "--database-url", database,
    )  # fmt: skip

    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert message.startswith(f"File 2 of the upload (SHA-256 {digest[:12]}): pixel data")
    assert PATIENT_NAME not in message
    assert PATIENT_NAME not in result.output


def test_reader_warning_is_counted_without_name(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _named_upload(tmp_path)
    _truncate_compressed(files[2])
    factory = open_database(database)

    with (
        caplog.at_level(logging.DEBUG),
        warnings.catch_warnings(record=True) as escaped,
        pytest.raises(InputError) as caught,
    ):
        warnings.simplefilter("always")
        import_dicom(
            factory, tmp_path / PATIENT_NAME, patient="P2", create_patient=True, secret=b"k" * 32
        )

    assert PATIENT_NAME not in str(caught.value)
    assert [str(item.message) for item in escaped] == []
    assert PATIENT_NAME not in caplog.text
    assert "reader warning (raised 1 times): End of file reached" in caplog.text
    assert table_counts(factory)["ct_series"] == 0


def test_names_kept_out_rewrites_records(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _named_upload(tmp_path)
    names = UploadFileNames(tmp_path / PATIENT_NAME)
    names.add_files(files, {file: "ab" * 32 for file in files})

    with caplog.at_level(logging.WARNING), names_kept_out(names):
        warnings.warn(f"End of file reached in file {files[1]}", UserWarning, stacklevel=1)
        logging.getLogger("pydicom").warning("cannot read %s", files[0])

    assert PATIENT_NAME not in caplog.text
    assert "reader warning (raised 1 times)" in caplog.text
    assert "file 1 of the upload (SHA-256 abababababab)" in caplog.text
    assert names.warning_counts() == {
        "End of file reached in file file 1 of the upload (SHA-256 abababababab)": 1
    }


def test_scrub_keeps_plain_words(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    named = tmp_path / f"{PATIENT_NAME}.dcm"
    names = UploadFileNames(tmp_path)
    names.add_files([data_file, named], {data_file: "0" * 64, named: "1" * 64})

    text = names.scrub(f"pixel data of {PATIENT_NAME}.dcm is damaged ({tmp_path})")

    assert text == (
        "pixel data of file 1 of the upload (SHA-256 111111111111) is damaged (the input)"
    )


def test_zip_entry_errors_use_position(database: str, tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "series", phantom_volume(2))
    archive = tmp_path / f"{PATIENT_NAME}.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"{PATIENT_NAME}/1.dcm", series[0].read_bytes())
        bundle.writestr(f"../{PATIENT_NAME}/2.dcm", series[1].read_bytes())

    result = _run(
        "import", "dicom", str(archive), "--patient", "P2", "--create-patient",
        "--database-url", database,
    )  # fmt: skip

    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert PATIENT_NAME not in message
    assert "unsafe name of zip entry 1" in message


def test_damaged_jpeg_error_has_no_name(database: str, tmp_path: Path) -> None:
    folder = tmp_path / "jpeg"
    paths = write_grey_series(folder, phantom_volume(3, 64, 64))
    damaged = paths[1].rename(folder / f"{PATIENT_NAME}-0009.png")
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n not really")

    result = _run(
        "import", "jpeg", str(folder), "--patient", "P2", "--create-patient",
        "--no-lung-extraction", "--database-url", database,
    )  # fmt: skip

    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert PATIENT_NAME not in message
    assert "of the upload (SHA-256" in message
    assert "image could not be read" in message


# --- NIfTI folders ------------------------------------------------------------------------


def test_nifti_folder_excludes_mask_volumes(database: str, tmp_path: Path) -> None:
    folder = tmp_path / "volumes"
    folder.mkdir()
    _write_nifti(folder / "a-ct.nii.gz", _ct_volume())
    _write_nifti(folder / "a-msk.nii.gz", _mask_like_volume())
    factory = open_database(database)

    report = import_nifti(factory, folder, patient="P3", create_patient=True, extract_lungs=False)

    assert report.n_series_imported == 1
    assert len(report.excluded_files) == 1
    excluded = report.excluded_files[0]
    assert excluded.file_index == 1
    assert excluded.reason.startswith("not a CT in Hounsfield units: no voxel is below -200 HU")
    assert "mask or a label map" in excluded.reason
    assert table_counts(factory)["ct_series"] == 1


def test_nifti_folder_with_lungs_imports_ct(database: str, tmp_path: Path) -> None:
    folder = tmp_path / "volumes"
    folder.mkdir()
    _write_nifti(folder / "a-ct.nii.gz", _ct_volume())
    _write_nifti(folder / "a-msk.nii.gz", _mask_like_volume())

    result = _run(
        "import", "nifti", str(folder), "--patient", "P3", "--create-patient",
        "--database-url", database,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "1 files excluded (not a CT in Hounsfield units" in result.output


def test_single_mask_nifti_is_user_error(database: str, tmp_path: Path) -> None:
    mask = _write_nifti(tmp_path / f"{PATIENT_NAME}-msk.nii.gz", _mask_like_volume())

    result = _run(
        "import", "nifti", str(mask), "--patient", "P3", "--create-patient",
        "--database-url", database,
    )  # fmt: skip

    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert message.startswith("File 0 of the upload (SHA-256 ")
    assert "not a CT in Hounsfield units" in message
    assert "import only the CT volumes" in message
    assert PATIENT_NAME not in message
    assert "extract_lung" not in message


def test_read_nifti_mask_without_hu_check(tmp_path: Path) -> None:
    mask = _write_nifti(tmp_path / "msk.nii.gz", _mask_like_volume())

    with pytest.raises(InputError, match=r"not a CT in Hounsfield units: no voxel is below"):
        read_nifti_volume(mask)
    volume = read_nifti_volume(mask, require_hu=False)

    assert any("not a CT in Hounsfield units" in warning for warning in volume.warnings)


# --- advice that users can follow ---------------------------------------------------------


def test_labelled_slices_names_plural_option(database: str, tmp_path: Path) -> None:
    write_grey_series(tmp_path / "lab" / "pCT" / "case-a", phantom_volume(2, 64, 64))

    result = _run("import", "labelled-slices", str(tmp_path / "lab"), "--database-url", database)

    assert isinstance(result.exception, DataNotFoundError)
    assert "pass --create-patients to create" in str(result.exception)


def test_missing_internal_key_names_command(database: str, tmp_path: Path) -> None:
    write_ct_series(tmp_path / "upload", phantom_volume(2))

    result = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "id:99",
        "--database-url", database,
    )  # fmt: skip

    assert isinstance(result.exception, DataNotFoundError)
    assert "ictcf export cfs --layout wide" in str(result.exception)


def test_series_of_other_patient_advice(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 5)
    add_patient(factory, 6)
    write_ct_series(tmp_path / "upload", phantom_volume(2))
    first = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "5", "--no-lung-extraction",
        "--database-url", database,
    )  # fmt: skip
    assert first.exit_code == 0, first.output

    second = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "6", "--no-lung-extraction",
        "--database-url", database,
    )  # fmt: skip

    message = str(second.exception)
    assert "delete" not in message
    assert "import these files for patient id:" in message


@pytest.mark.parametrize(
    "advice", ["ArchiveLimits", "SeriesGeometry", "extract_lung", "load_grey_slice"]
)
def test_messages_name_no_python_api(advice: str, database: str, tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "series", phantom_volume(2))
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for number in range(4):
            bundle.writestr(f"s/{number}.dcm", series[number % 2].read_bytes())
    mask = _write_nifti(tmp_path / "msk.nii.gz", _mask_like_volume())
    unit = _write_nifti(tmp_path / "unit.nii.gz", np.linspace(0, 1, 6 * 32 * 32).reshape(32, 32, 6))

    from ictcf.imaging.archive import ArchiveLimits, collect_input_files
    from ictcf.imaging.geometry import check_slice_spacing

    messages = []
    with pytest.raises(InputError) as caught:
        collect_input_files(archive, workdir=tmp_path / "w", limits=ArchiveLimits(max_entries=2))
    messages.append(str(caught.value))
    for path in (mask, unit):
        with pytest.raises(InputError) as caught:
            read_nifti_volume(path)
        messages.append(str(caught.value))
    messages.extend(check_slice_spacing(np.array([0.0, 5.0, 10.0, 17.0, 22.0])).warnings)

    assert messages
    for message in messages:
        assert advice not in message


# --- slice order --------------------------------------------------------------------------


def test_export_manifest_states_slice_order(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 8)
    write_ct_series(tmp_path / "dicom", phantom_volume(3))
    write_grey_series(tmp_path / "jpeg", phantom_volume(2, 64, 64))
    for kind, folder in (("dicom", "dicom"), ("jpeg", "jpeg")):
        result = _run(
            "import", kind, str(tmp_path / folder), "--patient", "8", "--no-lung-extraction",
            "--database-url", database,
        )  # fmt: skip
        assert result.exit_code == 0, result.output

    exported = _run(
        "export", "slices", "--output", str(tmp_path / "out"), "--database-url", database
    )

    assert exported.exit_code == 0, exported.output
    assert "(5 without a label)" in exported.output
    with (tmp_path / "out" / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    orders = {row["source_kind"]: row["slice_order"] for row in rows}
    assert orders == {"dicom": ORDER_INFERIOR_TO_SUPERIOR, "jpeg": ORDER_FILE_NAMES}


def test_export_summary_counts_labels(database: str, tmp_path: Path) -> None:
    write_grey_series(tmp_path / "lab" / "pCT" / "case-a", phantom_volume(2, 64, 64))
    write_grey_series(tmp_path / "lab" / "NiCT" / "case-a", phantom_volume(1, 64, 64))
    imported = _run(
        "import", "labelled-slices", str(tmp_path / "lab"), "--create-patients",
        "--no-lung-extraction", "--database-url", database,
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output

    exported = _run(
        "export", "slices", "--output", str(tmp_path / "out"), "--database-url", database
    )

    assert exported.exit_code == 0, exported.output
    assert "3 slices written to" in exported.output
    assert "(labelled NiCT 1, pCT 2)." in exported.output
    assert "none" not in exported.output


def _candidates(areas: list[float], *, reverse: bool) -> list[SliceCandidate]:
    last = len(areas) - 1
    return [
        SliceCandidate(
            slice_id=number,
            series_id=1,
            index=last - number if reverse else number,
            lung_area=area,
            informative=True,
        )
        for number, area in enumerate(areas)
    ]


@pytest.mark.parametrize("n_slices", [12, 16, 17, 23, 40])
def test_representative_choice_ignores_direction(n_slices: int) -> None:
    rng = np.random.default_rng(n_slices)
    # Distinct areas; the plateau holds more than five slices, so spreading needs rounding.
    areas = [float(area) for area in rng.permutation(n_slices) * 10.0 + 100.0]

    forward = choose_representative_slices(_candidates(areas, reverse=False))
    backward = choose_representative_slices(_candidates(areas, reverse=True))

    assert len(forward) == 5
    assert forward == backward


# --- header values in reader warnings -----------------------------------------------------

#: A marker placed in header values that pydicom warns about while reading.
VALUE_MARKER = "LEAKMARK"


def _set_raw(path: Path, tag: int, vr: str, value: bytes) -> None:
    """Write ``value`` into ``path`` as is, so that pydicom validates it only when reading."""
    if len(value) % 2:
        value += b" "
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = pydicom.dcmread(path)
        dataset[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
        dataset.save_as(path)


def test_reader_warning_values_never_stored(database_url: str, tmp_path: Path) -> None:
    files = write_ct_series(tmp_path / "upload", phantom_volume(3))
    for path in files:
        _set_raw(path, 0x00200011, "IS", f"{VALUE_MARKER}_IS".encode())  # SeriesNumber
        _set_raw(path, 0x00180050, "DS", f"{VALUE_MARKER}_DS".encode())  # SliceThickness
    report_path = tmp_path / "report.json"

    result = _run(
        "-v", "import", "dicom", str(tmp_path / "upload"), "--patient", "P3",
        "--create-patient", "--no-lung-extraction", "--report", str(report_path),
        "--database-url", database_url,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    report_text = report_path.read_text(encoding="utf-8")
    report = json.loads(report_text)
    assert "Invalid value for VR IS: '<value>'." in " ".join(report["reader_warnings"])
    assert VALUE_MARKER not in report_text
    assert VALUE_MARKER not in result.output
    assert VALUE_MARKER not in database_text(open_database(database_url))


def test_unknown_encoding_term_not_in_reader_warnings(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = write_ct_series(tmp_path / "upload", phantom_volume(2))
    for path in files:
        _set_raw(path, 0x00080005, "CS", f"{VALUE_MARKER}_CHARSET".encode())
    factory = open_database(database_url)

    with caplog.at_level(logging.WARNING, logger="ictcf.imaging.upload_files"):
        report = import_dicom(
            factory,
            tmp_path / "upload",
            patient="P4",
            create_patient=True,
            extract_lungs=False,
            secret=b"k" * 32,
        )

    messages = list(report.reader_warnings)
    assert "Unknown encoding '<value>' - using default encoding instead" in messages
    assert VALUE_MARKER not in " ".join(messages)
    upload_records = [r for r in caplog.records if r.name == "ictcf.imaging.upload_files"]
    assert upload_records
    assert all(VALUE_MARKER not in record.getMessage() for record in upload_records)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Invalid value for VR IS: 'DOE'.", "Invalid value for VR IS: '<value>'."),
        ("Unknown encoding 'DOE_JOHN' - using", "Unknown encoding '<value>' - using"),
        ('bad value "O\'BRIEN" found', 'bad value "<value>" found'),
        ("bad value 'O'BRIEN' found", "bad value '<value>' found"),
        ("raw b'DOE\\'S' read", "raw b'<value>' read"),
        ("value cut short: 'DOE JOHN", "value cut short: '<value>"),
        ("pydicom's reader can't parse it", "pydicom's reader can't parse it"),
    ],
)
def test_scrub_quoted_values(message: str, expected: str) -> None:
    assert scrub_quoted_values(message) == expected


def test_reader_message_keeps_quoted_file_reference(tmp_path: Path) -> None:
    path = tmp_path / f"{PATIENT_NAME}_1.dcm"
    path.write_bytes(b"x")
    names = UploadFileNames(tmp_path)
    names.add_files([path], {path: "ab" * 32})

    text = names.scrub_reader_message(f"cannot read '{path}': value 'DOE'")

    assert text == "cannot read 'file 0 of the upload (SHA-256 abababababab)': value '<value>'"


def test_short_input_path_not_replaced_inside_words() -> None:
    names = UploadFileNames(Path("up"))
    assert names.scrub("the upload in up/") == "the upload in the input/"


def test_names_kept_out_scrubs_reader_log_values(caplog: pytest.LogCaptureFixture) -> None:
    names = UploadFileNames()

    with caplog.at_level(logging.WARNING), names_kept_out(names):
        logging.getLogger("pydicom").warning("Invalid value for VR IS: %r", f"{VALUE_MARKER}_IS")
        logging.getLogger("ictcf.imaging.dicom_series").warning("use gantry_tilt='resample'")
        warnings.warn(f"Invalid value for VR DS: '{VALUE_MARKER}_DS'", UserWarning, stacklevel=1)

    assert VALUE_MARKER not in caplog.text
    assert "Invalid value for VR IS: '<value>'" in caplog.text
    assert "use gantry_tilt='resample'" in caplog.text
    assert names.warning_counts() == {"Invalid value for VR DS: '<value>'": 1}
