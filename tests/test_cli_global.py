"""Global options after the command name, progress bars off-terminal, clean database errors."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ictcf.cli import import_export_cmd
from ictcf.cli.common import CLIContext
from ictcf.cli.main import cli, main
from ictcf.ingest.importer import ImportReport, import_ictcf_export
from ictcf.progress import progress_bar
from tests.ingest.conftest import make_line, write_export


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures the ``ictcf`` logger; put it back for the other tests."""
    package_logger = logging.getLogger("ictcf")
    saved = (package_logger.handlers[:], package_logger.level, package_logger.propagate)
    yield
    package_logger.handlers[:], package_logger.level, package_logger.propagate = saved


def run_main(
    arguments: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run the console entry point as a user would; return (status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["ictcf", *arguments])
    code: object = 0
    try:
        main()
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return (code if isinstance(code, int) else 1), captured.out, captured.err


_CONTEXT = click.Context(cli)


def _leaf_commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(command, click.Group):
        for name in command.list_commands(_CONTEXT):
            subcommand = command.get_command(_CONTEXT, name)
            assert subcommand is not None
            yield from _leaf_commands(subcommand, (*path, name))
    else:
        yield path


@pytest.mark.parametrize("path", sorted(_leaf_commands(cli)), ids=" ".join)
def test_every_command_accepts_global_options(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(_CONTEXT, name)
        assert found is not None
        command = found
        options = {option for parameter in command.params for option in parameter.opts}
        assert {"-v", "--verbose", "--no-progress"} <= options, " ".join(
            path[: path.index(name) + 1]
        )


@pytest.fixture
def recorded_progress(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the ``progress`` the import command passes to the importer."""
    calls: list[bool] = []

    def recording_import(*args: Any, **kwargs: Any) -> ImportReport:
        calls.append(kwargs["progress"])
        return import_ictcf_export(*args, **kwargs)

    monkeypatch.setattr(import_export_cmd, "import_ictcf_export", recording_import)
    return calls


@pytest.mark.parametrize(
    ("before", "after", "progress", "level"),
    [
        ([], [], True, logging.WARNING),
        (["--no-progress"], [], False, logging.WARNING),
        ([], ["--no-progress"], False, logging.WARNING),
        (["-v"], [], True, logging.INFO),
        ([], ["-v"], True, logging.INFO),
        ([], ["--verbose", "--no-progress"], False, logging.INFO),
        (["-v"], ["-v"], True, logging.DEBUG),
        ([], ["-vv"], True, logging.DEBUG),
    ],
)
def test_global_options_before_or_after_the_command(
    sqlite_url: str,
    tmp_path: Path,
    recorded_progress: list[bool],
    before: list[str],
    after: list[str],
    progress: bool,
    level: int,
) -> None:
    path = write_export(tmp_path, [make_line(1)])
    arguments = ["import", "ictcf-export", str(path), "--database-url", sqlite_url]
    result = CliRunner().invoke(cli, [*before, *arguments, *after], obj=None)
    assert result.exit_code == 0, result.output
    assert recorded_progress == [progress]
    assert logging.getLogger("ictcf").level == level


def test_global_option_after_a_group_name(sqlite_url: str, tmp_path: Path) -> None:
    path = write_export(tmp_path, [make_line(1)])
    result = CliRunner().invoke(
        cli,
        ["import", "--no-progress", "-v", "ictcf-export", str(path), "--database-url", sqlite_url],
    )
    assert result.exit_code == 0, result.output
    assert logging.getLogger("ictcf").level == logging.INFO


def test_subcommand_options_update_the_shared_context() -> None:
    seen: list[CLIContext] = []

    @click.command()
    @click.pass_obj
    def probe(state: CLIContext) -> None:
        seen.append(state)

    from ictcf.cli.common import add_global_options

    add_global_options(probe)
    group = click.Group("g", commands={"probe": probe})
    group.invoke_without_command = False
    CliRunner().invoke(group, ["probe", "--no-progress", "-vv"], obj=CLIContext())
    assert len(seen) == 1
    assert (seen[0].progress, seen[0].verbose) == (False, 2)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_hidden_off_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stderr", redirected)
    assert list(progress_bar(range(5), enabled=True, description="Reading export")) == list(
        range(5)
    )
    assert redirected.getvalue() == ""


def test_progress_bar_drawn_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress_bar(range(5), enabled=True, description="Reading export")) == list(
        range(5)
    )
    assert "Reading export" in terminal.getvalue()
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    list(progress_bar(range(5), enabled=False, description="Reading export"))
    assert terminal.getvalue() == ""


def test_import_to_redirected_stderr_has_no_bar(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_export(tmp_path, [make_line(1), make_line(2)])
    status, out, err = run_main(
        ["import", "ictcf-export", str(path), "--database-url", sqlite_url], monkeypatch, capsys
    )
    assert status == 0, err
    assert "Imported export.txt: 2 patients added" in out
    assert err == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "Error: 'notaurl' is not a database URL."),
        (
            "mysql://u:hunter2@127.0.0.1/x",
            "Error: database URL 'mysql://u:***@127.0.0.1/x' uses the 'mysql' backend",
        ),
    ],
)
@pytest.mark.parametrize("source", ["option", "environment"])
def test_bad_database_url_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    message: str,
    source: str,
) -> None:
    arguments = ["export", "cfs", "-o", str(tmp_path / "x.csv")]
    if source == "option":
        arguments += ["--database-url", url]
    else:
        monkeypatch.setenv("ICTCF_DATABASE_URL", url)
    status, _out, err = run_main(arguments, monkeypatch, capsys)
    assert status == 1
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert "hunter2" not in err
    assert "sqlite:///PATH" in err
    assert not (tmp_path / "x.csv").exists()


def test_export_from_missing_database_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "no" / "such" / "ictcf.sqlite3"
    status, _, err = run_main(
        ["export", "cfs", "--database-url", f"sqlite:///{database}", "-o", str(tmp_path / "x.csv")],
        monkeypatch,
        capsys,
    )
    assert status == 1
    assert err.startswith(f"Error: database file {database} does not exist. Import data first")
    assert not (tmp_path / "no").exists()


def test_export_unknown_cohort_lists_cohorts(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_export(tmp_path, [make_line(1), make_line(1200)])
    run_main(
        ["import", "ictcf-export", str(path), "--database-url", sqlite_url], monkeypatch, capsys
    )
    status, _, err = run_main(
        [
            "export",
            "cfs",
            "--cohort",
            "nosuch",
            "-o",
            str(tmp_path / "c.csv"),
            "--database-url",
            sqlite_url,
        ],
        monkeypatch,
        capsys,
    )
    assert status == 1
    assert err.startswith(
        "Error: cohort 'nosuch' does not exist. Stored cohorts: cohort1, cohort2."
    )


def test_singular_counts_in_import_summary(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    only_pct = "$#$Basic Information$#$Inflammation$Procalcitonin@PCT@<0.13@<0.5 ng/ml"
    path = write_export(tmp_path, [make_line(1, cf=only_pct), make_line(2)[:60]])
    arguments = ["import", "ictcf-export", str(path), "--database-url", sqlite_url]
    status, out, err = run_main([*arguments, "--skip-invalid"], monkeypatch, capsys)
    assert status == 0, err
    assert "1 patient added, 0 unchanged, 1 line skipped; 1 CF value in" in out
    status, out, err = run_main([*arguments, "--skip-invalid"], monkeypatch, capsys)
    assert (
        "Nothing changed: the one patient of export.txt is already stored (1 line skipped)." in out
    )


@pytest.mark.parametrize(
    "command",
    [["stats", "--output"], ["export", "slices", "--output"], ["export", "cfs", "--output"]],
)
def test_read_only_commands_refuse_missing_database(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "typo" / "ictcf.sqlite3"
    output = tmp_path / "out.csv" if command[-2] == "cfs" else tmp_path / "out"
    arguments = [*command, str(output), "--database-url", f"sqlite:///{missing}"]
    status, _, err = run_main(arguments, monkeypatch, capsys)
    assert status == 1
    assert "does not exist" in err
    assert not missing.parent.exists()
    assert not output.exists()


def test_import_command_starts_without_model_libraries() -> None:
    code = (
        "import sys\n"
        "from ictcf.cli.main import cli\n"
        "cli.main(['import', '--help'], standalone_mode=False)\n"
        "print('torch' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip().splitlines()[-1] == "False False"
