"""The per-installation de-identification secret."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from ictcf.errors import InputError
from ictcf.imaging.deidentify import SECRET_LENGTH_BYTES, load_or_create_secret


def test_secret_created_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "home" / "deidentification.key"
    secret = load_or_create_secret(path)
    assert len(secret) == SECRET_LENGTH_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(path) == secret
    assert load_or_create_secret(tmp_path / "other.key") != secret


def test_secret_not_hexadecimal_rejected(tmp_path: Path) -> None:
    path = tmp_path / "deidentification.key"
    path.write_text("not a secret\n", encoding="ascii")
    path.chmod(0o600)
    with pytest.raises(InputError, match=r"deidentification\.key: .*not hexadecimal"):
        load_or_create_secret(path)


def test_secret_too_short_rejected(tmp_path: Path) -> None:
    path = tmp_path / "deidentification.key"
    path.write_text("00ff\n", encoding="ascii")
    path.chmod(0o600)
    with pytest.raises(InputError, match="is 2 bytes long"):
        load_or_create_secret(path)


def test_readable_secret_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "deidentification.key"
    secret = load_or_create_secret(path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ictcf.imaging.pseudonyms"):
        assert load_or_create_secret(path) == secret
    assert "chmod 600" in caplog.text
