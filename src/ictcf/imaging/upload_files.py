"""Refer to uploaded files without their names in messages, logs and warnings.

File names of CT exports often contain patient names (``DOE_JANE_0001.dcm``), and so do the
folder and archive names around them. Every message that the import functions raise or log
therefore names a file by its position in the sorted upload (``file_index`` of the import
report, counted from 0) and the first characters of its SHA-256, which ``sha256sum`` finds
again. Reader messages and third-party warnings that quote a path are rewritten the same way.

Reader warnings also quote header values (pydicom 3: ``Invalid value for VR IS: 'DOE'``,
``Unknown encoding 'DOE_JOHN'``). Before such a warning is stored, logged or raised again,
the content of every quoted value in it becomes ``<value>`` (see
:func:`scrub_quoted_values`).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ictcf.errors import InputError

logger = logging.getLogger(__name__)

#: Hex digits of the SHA-256 shown in messages: 12 digits (48 bits) tell the files of one
#: upload apart and are short enough to read.
SHORT_SHA256_DIGITS = 12
#: Loggers whose records can quote a file path: the readers (pydicom logs each warning it also
#: raises with ``warnings.warn``) and the modules of this package that read upload files.
READER_LOGGERS = (
    "pydicom",
    "nibabel",
    "PIL",
    "ictcf.imaging.archive",
    "ictcf.imaging.dicom_series",
    "ictcf.imaging.deidentify",
    "ictcf.imaging.ingest_ct",
    "ictcf.imaging.nifti",
    "ictcf.imaging.raster",
)
#: Bare file names shorter than this (characters) are replaced only when they contain a digit,
#: dot, dash or underscore, so that a file called ``data`` does not rewrite "pixel data".
MIN_PLAIN_NAME_LENGTH = 8
#: Text that replaces the content of a quoted value in reader warnings.
VALUE_PLACEHOLDER = "<value>"
#: A value quoted in single or double quotes, as ``repr`` and f-strings write it, with an
#: optional bytes or string prefix. Backslash escapes and quotes followed by a word character
#: (``'O'BRIEN'``) belong to the value. An opening quote without its closing quote takes the
#: rest of the message. An apostrophe after a word character (``pydicom's``) opens no value.
_QUOTED_VALUE = re.compile(
    r"(?<!\w)[bBrRuU]{0,2}"
    r"(?:'(?:[^'\\]|\\.|'(?=\w))*'(?!\w)"
    r'|"(?:[^"\\]|\\.|"(?=\w))*"(?!\w))'
    r"""|(?<!\w)['"].*\Z""",
    re.DOTALL,
)
#: An upload reference written by :func:`describe_upload_file`, kept when a reader quotes it.
_UPLOAD_REFERENCE = re.compile(r"file \d+ of the upload \(SHA-256 [0-9a-f]*\)|the input")


def _is_distinctive(name: str) -> bool:
    # NOTE: a short plain-word name (``JANE``) is therefore left in reader messages; whole
    # paths are always replaced.
    return len(name) >= MIN_PLAIN_NAME_LENGTH or any(char in name for char in "0123456789.-_")


def _replace_whole(text: str, original: str, replacement: str) -> str:
    pattern = rf"(?<![\w.-]){re.escape(original)}(?![\w-])"
    return re.sub(pattern, lambda _match: replacement, text)


def describe_upload_file(index: int, sha256: str) -> str:
    """Return the name-free reference to one uploaded file used in messages.

    Parameters
    ----------
    index : int
        Position of the file in the sorted upload, counted from 0 (``file_index``).
    sha256 : str
        Hex SHA-256 of the file.

    Returns
    -------
    str
        Such as ``"file 2 of the upload (SHA-256 1a2b3c4d5e6f)"``.
    """
    return f"file {index} of the upload (SHA-256 {sha256[:SHORT_SHA256_DIGITS]})"


def scrub_quoted_values(
    text: str, *, keep: re.Pattern[str] | None = None, close_open_quote: bool = False
) -> str:
    """Replace the content of every quoted value in ``text`` by ``<value>``.

    pydicom quotes the offending value in its warnings (``Invalid value for VR IS:
    'LEAKMARK'``), and such values can come from any header attribute, so the whole quoted
    text is replaced: single or double quotes, optionally with a bytes prefix (``b'...'``).
    An opening quote without its closing quote replaces the rest of the message.

    Parameters
    ----------
    text : str
        A reader message.
    keep : re.Pattern, optional
        Quoted text that matches this pattern in full is kept (such as an upload reference).
    close_open_quote : bool, default False
        Write the closing quote after ``<value>`` also where the message had none.

    Returns
    -------
    str
        ``text`` with each quoted value written as ``'<value>'`` (its quotes kept).
    """

    def replace(match: re.Match[str]) -> str:
        quoted = match.group(0)
        body = quoted.lstrip("bBrRuU")
        prefix = quoted[: len(quoted) - len(body)]
        quote = body[0]
        closed = len(body) > 1 and body.endswith(quote)
        inner = body[1:-1] if closed else body[1:]
        if keep is not None and keep.fullmatch(inner):
            return quoted
        closing = quote if closed or close_open_quote else ""
        return f"{prefix}{quote}{VALUE_PLACEHOLDER}{closing}"

    return _QUOTED_VALUE.sub(replace, text)


class UploadFileNames:
    """Rewrites the paths and names of one upload's files in text.

    Parameters
    ----------
    input_path : Path, optional
        The folder, archive or file the user gave. Its path, as given and made absolute, is
        replaced by ``"the input"`` because it can hold a patient name as well.
    """

    def __init__(self, input_path: Path | None = None) -> None:
        self._index: dict[Path, int] = {}
        self._hashes: dict[Path, str] = {}
        self._replacements: dict[str, str] = {}
        self._name_replacements: dict[str, str] = {}
        self._recorded: list[warnings.WarningMessage] = []
        if input_path is not None:
            self._replacements[str(input_path)] = "the input"
            self._replacements[str(Path(input_path).resolve())] = "the input"

    def add_files(self, files: Sequence[Path], hashes: Mapping[Path, str]) -> None:
        """Register the uploaded files in their sorted order (the order of ``file_index``)."""
        self._index = {Path(file): number for number, file in enumerate(files)}
        self._hashes = {Path(file): digest for file, digest in hashes.items()}
        for file, number in self._index.items():
            label = describe_upload_file(number, self._hashes.get(file, ""))
            self._replacements[str(file)] = label
            if _is_distinctive(file.name):
                self._name_replacements[file.name] = label

    def label(self, path: Path) -> str | None:
        """Return the reference of ``path`` if it is one of the uploaded files, else None."""
        number = self._index.get(Path(path))
        if number is None:
            return None
        return describe_upload_file(number, self._hashes.get(Path(path), ""))

    def scrub(self, text: str) -> str:
        """Replace every registered path or name in ``text`` by its reference."""
        # Longest first, so that a full path is replaced before the name inside it. A path
        # is replaced only where it is not part of a longer word, so that the input ``up``
        # leaves "upload" as it is.
        for original in sorted(self._replacements, key=len, reverse=True):
            if original and original in text:
                text = _replace_whole(text, original, self._replacements[original])
        for name, label in self._name_replacements.items():
            if name in text:
                text = _replace_whole(text, name, label)
        return text

    def scrub_reader_message(self, text: str) -> str:
        """Replace paths, names and quoted header values in a reader's message.

        Quoted upload references (a quoted path rewritten by :meth:`scrub`) are kept.
        """
        return scrub_quoted_values(self.scrub(text), keep=_UPLOAD_REFERENCE)

    def rewrite_error(self, err: InputError) -> InputError:
        """Return ``err`` as a new error that names its file by reference, not by name."""
        reason = self.scrub(err.reason)
        label = self.label(err.path) if err.path is not None else None
        if label is not None:
            reason = f"{label[:1].upper()}{label[1:]}: {reason}"
        if err.line is not None:
            reason = f"{reason} (line {err.line})"
        return InputError(reason)

    def warning_counts(self) -> dict[str, int]:
        """Return the reader warnings recorded so far, with their counts.

        File names and quoted header values are replaced (:meth:`scrub_reader_message`), so
        warnings that differed only in the value are counted together.
        """
        counts = Counter(
            self.scrub_reader_message(str(item.message))
            for item in self._recorded
            if not issubclass(item.category, _PASSED_ON_CATEGORIES)
        )
        return dict(sorted(counts.items()))


#: Warning categories meant for developers; they are raised again (without names), not logged.
_PASSED_ON_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


#: Logger name prefix of this package. Its records keep their quotes, because they quote
#: option values as advice (``gantry_tilt='reject'``), so they must leave header values out.
_PACKAGE_LOGGER_PREFIX = "ictcf."


class _ScrubFilter(logging.Filter):
    def __init__(self, names: UploadFileNames) -> None:
        super().__init__()
        self._names = names

    def filter(self, record: logging.LogRecord) -> bool:
        # Third-party readers (pydicom logs each warning it raises) quote header values.
        if record.name.startswith(_PACKAGE_LOGGER_PREFIX):
            record.msg = self._names.scrub(record.getMessage())
        else:
            record.msg = self._names.scrub_reader_message(record.getMessage())
        record.args = None
        return True


@contextmanager
def names_kept_out(names: UploadFileNames) -> Iterator[UploadFileNames]:
    """Keep file names out of the errors, warnings and reader logs raised inside the block.

    An :class:`~ictcf.errors.InputError` leaving the block is raised again with its file
    named by reference (chained with ``from``). Warnings raised inside the block (pydicom
    warns about truncated files with the path, and about invalid values with the value) are
    recorded instead of printed. When the block ends, each distinct message is logged once
    at WARNING level without names and quoted values, with its count, and
    :meth:`UploadFileNames.warning_counts` returns them while the block runs. Records of the
    loggers in ``READER_LOGGERS`` are rewritten the same way (quoted values only in the
    records of third-party readers).

    NOTE: ``warnings.catch_warnings`` changes process-wide state, so warnings that other
    threads raise during an import are recorded here too, and two imports running in threads
    of one process can restore each other's filters early.
    """
    scrub_filter = _ScrubFilter(names)
    reader_loggers = [logging.getLogger(name) for name in READER_LOGGERS]
    for reader_logger in reader_loggers:
        reader_logger.addFilter(scrub_filter)
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            names._recorded = recorded
            try:
                yield names
            except InputError as err:
                raise names.rewrite_error(err) from err
            finally:
                for message, count in names.warning_counts().items():
                    logger.warning("reader warning (raised %d times): %s", count, message)
        for item in recorded:
            if issubclass(item.category, _PASSED_ON_CATEGORIES):
                warnings.warn(
                    names.scrub_reader_message(str(item.message)), item.category, stacklevel=3
                )
    finally:
        for reader_logger in reader_loggers:
            reader_logger.removeFilter(scrub_filter)
