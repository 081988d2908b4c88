"""Shift DICOM dates, times and datetimes by a fixed offset, keeping each value's precision.

Used by the de-identifier's Retain Longitudinal Temporal Information Modified Dates Option:
every DA, TM and DT value of one patient moves by the same offset, so intervals between
events survive while the calendar dates do not. A date without a time is treated as
midnight; a time without a date is shifted modulo 24 hours. Every function returns ``None``
for a value it cannot parse instead of guessing, and the caller then empties the value.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Final

# DA is YYYYMMDD; ACR-NEMA files still carry the older YYYY.MM.DD form.
_DA_PATTERN: Final = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
# TM is HH[MM[SS[.F{1,6}]]]; ACR-NEMA files use HH:MM:SS.
_TM_PATTERN: Final = re.compile(r"^(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?(?:\.(\d{1,6}))?$")
# DT is YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX].
_DT_PATTERN: Final = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$"
)
# DICOM allows 60 seconds for a leap second; Python's time() does not.
_MAX_SECOND: Final = 59
# Any date serves as the anchor for a time without a date: only its time of day is used.
_TIME_ONLY_ANCHOR: Final = date(2000, 1, 1)


def _parse_date(value: str) -> date | None:
    match = _DA_PATTERN.match(value.strip())
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _parse_time(value: str) -> tuple[time, int, int] | None:
    """Return the time, the number of HH/MM/SS components and the number of fraction digits."""
    match = _TM_PATTERN.match(value.strip())
    if match is None:
        return None
    hour_text, minute_text, second_text, fraction_text = match.groups()
    if fraction_text is not None and second_text is None:
        return None
    components = 1 + (minute_text is not None) + (second_text is not None)
    fraction_digits = len(fraction_text) if fraction_text else 0
    microsecond = int(fraction_text.ljust(6, "0")) if fraction_text else 0
    try:
        parsed = time(
            int(hour_text),
            int(minute_text or 0),
            min(int(second_text or 0), _MAX_SECOND),
            microsecond,
        )
    except ValueError:
        return None
    return parsed, components, fraction_digits


def _format_time(value: time, components: int, fraction_digits: int) -> str:
    text = f"{value.hour:02d}"
    if components >= 2:
        text += f"{value.minute:02d}"
    if components >= 3:
        text += f"{value.second:02d}"
        if fraction_digits:
            text += "." + f"{value.microsecond:06d}"[:fraction_digits]
    return text


def shift_date(value: str, offset: timedelta) -> str | None:
    """Shift a DA value, treating it as midnight.

    Parameters
    ----------
    value : str
        ``YYYYMMDD`` (or the ACR-NEMA ``YYYY.MM.DD``).
    offset : datetime.timedelta
        The shift; its time-of-day part moves the date only when it crosses midnight.

    Returns
    -------
    str or None
        ``YYYYMMDD``, or None when the value is not a valid date or leaves years 1-9999.
    """
    parsed = _parse_date(value)
    if parsed is None:
        return None
    try:
        shifted = datetime.combine(parsed, time()) + offset
    except OverflowError:
        return None
    return shifted.strftime("%Y%m%d")


def shift_time(value: str, offset: timedelta) -> str | None:
    """Shift a TM value without a date, modulo 24 hours, keeping its precision.

    Returns None when the value is not a valid time.
    """
    parsed = _parse_time(value)
    if parsed is None:
        return None
    parsed_time, components, fraction_digits = parsed
    shifted = datetime.combine(_TIME_ONLY_ANCHOR, parsed_time) + offset
    return _format_time(shifted.time(), components, fraction_digits)


def shift_date_and_time(
    date_value: str, time_value: str, offset: timedelta
) -> tuple[str, str] | None:
    """Shift a DA value and its paired TM value as one instant.

    The date changes by an extra day when the shifted time crosses midnight, so the pair
    stays consistent with a DT of the same instant. Returns None when either value is
    invalid or the result leaves years 1-9999.
    """
    parsed_date = _parse_date(date_value)
    parsed = _parse_time(time_value)
    if parsed_date is None or parsed is None:
        return None
    parsed_time, components, fraction_digits = parsed
    try:
        shifted = datetime.combine(parsed_date, parsed_time) + offset
    except OverflowError:
        return None
    return shifted.strftime("%Y%m%d"), _format_time(shifted.time(), components, fraction_digits)


def shift_datetime(value: str, offset: timedelta) -> str | None:
    """Shift a DT value, keeping its precision and its UTC offset suffix.

    Missing components count as their lowest value (month 1, day 1, 00:00:00) before the
    shift and are dropped again after it. Returns None when the value is not a valid DT
    or the result leaves years 1-9999.
    """
    match = _DT_PATTERN.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, utc_offset = match.groups()
    parts = [year, month, day, hour, minute, second]
    precision = sum(part is not None for part in parts)
    if any(part is None for part in parts[:precision]) or (fraction and precision < 6):
        return None
    try:
        parsed = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), _MAX_SECOND),
            int(fraction.ljust(6, "0")) if fraction else 0,
        )
        shifted = parsed + offset
    except (ValueError, OverflowError):
        return None
    text = shifted.strftime("%Y%m%d%H%M%S")[: 4 + 2 * (precision - 1)]
    if fraction:
        text += "." + f"{shifted.microsecond:06d}"[: len(fraction)]
    return text + (utc_offset or "")
