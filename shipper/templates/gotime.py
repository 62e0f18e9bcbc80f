"""Go's time.Time for templates: printing, reference-time layouts, methods, durations.

Three Go types share this class, told apart by ``kind`` because templates see the difference:
``time.Time`` (what sprig's ``now``, ``toDate`` and ``.Time`` return; the only one sprig's
``date`` reads, every other value makes ``date`` format *now*), ``v1.Time`` (an Event's
``FirstTimestamp``/``LastTimestamp``: JSON is RFC 3339 in seconds, ``null`` when zero) and
``v1.MicroTime`` (``EventTime``: microseconds, ``null`` when zero). "Local" is UTC: the
daemon runs in UTC, as kubernetes-event-exporter's image does.
"""

from __future__ import annotations

import re
import time as _time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shipper.templates.values import GoError, Int64, Method, Month, Weekday, is_int

ZERO = datetime(1, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TYPE_NAMES = {"time": "time.Time", "metav1": "v1.Time", "micro": "v1.MicroTime"}


class GoTime:
    """A moment (aware datetime, microsecond precision) of one of the three Go time types."""

    __slots__ = ("kind", "moment", "monotonic")

    def __init__(self, moment: datetime, kind: str = "time", monotonic: float | None = None):
        self.moment = moment
        self.kind = kind
        self.monotonic = monotonic

    @classmethod
    def parse(cls, text: str | None, kind: str) -> GoTime:
        """An RFC 3339 timestamp from the event; the zero time when there is none."""
        if not text:
            return cls(ZERO, kind)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return cls(ZERO, kind)
        return cls(moment, kind)

    @classmethod
    def now(cls) -> GoTime:
        return cls(datetime.now(UTC), "time", monotonic=_time.monotonic() - _START)

    @property
    def go_type(self) -> str:
        return _TYPE_NAMES[self.kind]

    def is_zero(self) -> bool:
        return self.moment == ZERO

    def __str__(self) -> str:
        text = go_format(self.moment, "2006-01-02 15:04:05.999999999 -0700 MST")
        if self.monotonic is not None:
            text += f" m=+{self.monotonic:.9f}"
        return text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and (self.moment, self.kind) == (other.moment, other.kind)

    def __hash__(self) -> int:
        return hash(self.moment)

    def json(self) -> str | None:
        """encoding/json's text of this time (None: ``null``)."""
        if self.kind == "time":
            return go_format(self.moment, "2006-01-02T15:04:05.999999999Z07:00")
        if self.is_zero():
            return None
        utc = self.moment.astimezone(UTC)
        layout = "2006-01-02T15:04:05Z07:00" if self.kind == "metav1" else _MICRO
        return go_format(utc, layout)

    def unix(self) -> int:
        return (self.moment - _EPOCH) // timedelta(seconds=1)

    def unix_nano(self) -> int:
        nanos = (self.moment - _EPOCH) // timedelta(microseconds=1) * 1000
        return (nanos + 2**63) % 2**64 - 2**63  # wraps like Go's int64 for far-off dates

    def method(self, name: str) -> Method | None:
        """The methods of time.Time (and metav1.Time's, which embeds it) templates can call."""
        found = _METHODS.get(name)
        if found is None:
            return None
        params, fn = found
        return Method(params, lambda *args: fn(self, *args))

    def as_time(self) -> GoTime:
        """The embedded ``time.Time`` of a v1.Time (``.Time``)."""
        return GoTime(self.moment, "time")


_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_START = _time.monotonic()


def _in_zone(t: GoTime, zone: tzinfo) -> GoTime:
    return GoTime(t.moment.astimezone(zone), "time")


_METHODS: dict[str, tuple[tuple[str, ...], Any]] = {
    "Format": (("string",), lambda t, layout: go_format(t.moment, layout)),
    "String": ((), lambda t: str(t)),
    "Unix": ((), lambda t: Int64(t.unix())),
    "UnixMilli": ((), lambda t: Int64(t.unix() * 1000 + t.moment.microsecond // 1000)),
    "UnixMicro": ((), lambda t: Int64(t.unix() * 1_000_000 + t.moment.microsecond)),
    "UnixNano": ((), lambda t: Int64(t.unix_nano())),
    "Year": ((), lambda t: t.moment.year),
    "Month": ((), lambda t: Month(t.moment.month)),
    "Day": ((), lambda t: t.moment.day),
    "Hour": ((), lambda t: t.moment.hour),
    "Minute": ((), lambda t: t.moment.minute),
    "Second": ((), lambda t: t.moment.second),
    "Nanosecond": ((), lambda t: t.moment.microsecond * 1000),
    "YearDay": ((), lambda t: _yday(t.moment)),
    "Weekday": ((), lambda t: Weekday((t.moment.weekday() + 1) % 7)),
    "IsZero": ((), lambda t: t.is_zero()),
    "UTC": ((), lambda t: _in_zone(t, UTC)),
    "Local": ((), lambda t: _in_zone(t, UTC)),
    "Add": (("int64",), lambda t, d: GoTime(t.moment + timedelta(microseconds=d // 1000))),
    "AddDate": (("int", "int", "int"), lambda t, y, m, d: GoTime(add_date(t.moment, y, m, d))),
}


def add_date(moment: datetime, years: int, months: int, days: int) -> datetime:
    """time.AddDate: overflowing months and days roll over as in Go (Oct 31 + 1 month = Dec 1)."""
    month0 = moment.month - 1 + months
    year = moment.year + years + month0 // 12
    first = moment.replace(year=year, month=month0 % 12 + 1, day=1)
    return first + timedelta(days=moment.day - 1 + days)


# -- layouts


_STD = re.compile(
    r"January|Jan(?![a-z])|Monday|Mon(?![a-z])|MST|0[1-6]|002|15|1|2006|_2006|__2|_2|2|3|4|5|PM|pm"
    r"|-070000|-07:00:00|-0700|-07:00|-07|Z070000|Z07:00:00|Z0700|Z07:00|Z07|[.,](?:0+|9+)(?!\d)"
)
_MONTH_NAMES = [datetime(2000, m, 1).strftime("%B") for m in range(1, 13)]
_DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _zone_name(moment: datetime) -> str:
    name = moment.tzname() or ""
    if name and (name[0].isalpha()):
        return name
    return ""


def _offset(moment: datetime, colon: bool, seconds: bool, short: bool, z: bool) -> str:
    off = int((moment.utcoffset() or timedelta()).total_seconds())
    if z and off == 0:
        return "Z"
    sign = "-" if off < 0 else "+"
    off = abs(off)
    hh, mm, ss = off // 3600, off // 60 % 60, off % 60
    if short:
        return f"{sign}{hh:02d}"
    sep = ":" if colon else ""
    return f"{sign}{hh:02d}{sep}{mm:02d}" + (f"{sep}{ss:02d}" if seconds else "")


def _yday(m: datetime) -> int:
    return m.toordinal() - datetime(m.year, 1, 1).toordinal() + 1


_SIMPLE: dict[str, Any] = {
    "January": lambda m: _MONTH_NAMES[m.month - 1],
    "Jan": lambda m: _MONTH_NAMES[m.month - 1][:3],
    "Monday": lambda m: _DAY_NAMES[m.weekday()],
    "Mon": lambda m: _DAY_NAMES[m.weekday()][:3],
    "01": lambda m: f"{m.month:02d}",
    "02": lambda m: f"{m.day:02d}",
    "03": lambda m: f"{(m.hour % 12) or 12:02d}",
    "04": lambda m: f"{m.minute:02d}",
    "05": lambda m: f"{m.second:02d}",
    "06": lambda m: f"{m.year % 100:02d}",
    "002": lambda m: f"{_yday(m):03d}",
    "__2": lambda m: f"{_yday(m):3d}",
    "15": lambda m: f"{m.hour:02d}",
    "1": lambda m: str(m.month),
    "2006": lambda m: f"{m.year:04d}",
    "_2": lambda m: f"{m.day:2d}",
    "2": lambda m: str(m.day),
    "3": lambda m: str((m.hour % 12) or 12),
    "4": lambda m: str(m.minute),
    "5": lambda m: str(m.second),
    "PM": lambda m: "PM" if m.hour >= 12 else "AM",
    "pm": lambda m: "pm" if m.hour >= 12 else "am",
}


def _std_value(moment: datetime, std: str) -> str:
    """The text of one layout element (time/format.go's appendFormat)."""
    m = moment
    simple = _SIMPLE.get(std)
    if simple is not None:
        return simple(m)
    if std == "_2006":
        return "_" + f"{m.year:04d}"
    if std == "MST":
        return _zone_name(m) or _offset(m, False, False, False, False)
    if std[0] in ".,":
        digits = f"{m.microsecond:06d}000"[: len(std) - 1]
        if std[1] == "9":
            digits = digits.rstrip("0")
            return std[0] + digits if digits else ""
        return std[0] + digits
    colon, seconds = ":" in std, std.endswith("0000") or std.count(":") == 2
    return _offset(m, colon, seconds, std in ("-07", "Z07"), std[0] == "Z")


def go_format(moment: datetime, layout: str) -> str:
    """time.Time.Format with Go's reference-time layout (``2006-01-02T15:04:05Z07:00``)."""
    return _STD.sub(lambda match: _std_value(moment, match.group(0)), layout)


def go_parse(layout: str, text: str, zone: tzinfo = UTC) -> GoTime:
    """time.ParseInLocation for the common layouts; GoError as Go reports a mismatch."""
    pattern, names, pos = [], [], 0
    for match in _STD.finditer(layout):
        pattern.append(re.escape(layout[pos : match.start()]))
        std = match.group(0)
        names.append(std)
        pattern.append(f"({_PARSE_RE.get(std, _parse_re_other(std))})")
        pos = match.end()
    pattern.append(re.escape(layout[pos:]))
    found = re.fullmatch("".join(pattern), text)
    if found is None:
        raise GoError(f'parsing time "{text}" as "{layout}": cannot parse "{text}" as "{layout}"')
    parts: dict[str, Any] = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0}
    parts.update(second=0, micro=0, pm=None, offset=None, zone=None)
    for std, value in zip(names, found.groups(), strict=True):
        _parse_part(std, value, parts)
    hour = parts["hour"]
    if parts["pm"] is not None:
        hour = hour % 12 + (12 if parts["pm"] else 0)
    tz = zone if parts["offset"] is None else _fixed_zone(parts["offset"])
    if parts["zone"] not in (None, "UTC") and parts["offset"] is None:
        tz = timezone(timedelta(0), parts["zone"])  # Go: an unknown abbreviation, offset 0
    try:
        moment = datetime(parts["year"], parts["month"], parts["day"], hour, parts["minute"],
                          parts["second"], parts["micro"], tzinfo=tz)  # fmt: skip
    except ValueError as exc:
        raise GoError(f'parsing time "{text}": {exc}') from None
    return GoTime(moment, "time")


_PARSE_RE = {
    "January": "|".join(_MONTH_NAMES), "Jan": "|".join(n[:3] for n in _MONTH_NAMES),
    "Monday": "|".join(_DAY_NAMES), "Mon": "|".join(n[:3] for n in _DAY_NAMES),
    "MST": "[A-Z]{3,5}", "2006": r"\d{4}", "06": r"\d\d", "01": r"\d\d", "1": r"\d\d?",
    "02": r"\d\d", "_2": r" ?\d\d?", "2": r"\d\d?", "15": r"\d\d?", "03": r"\d\d", "3": r"\d\d?",
    "04": r"\d\d", "4": r"\d\d?", "05": r"\d\d", "5": r"\d\d?", "PM": "AM|PM", "pm": "am|pm",
}  # fmt: skip


def _parse_re_other(std: str) -> str:
    if std[0] in ".,":
        return r"[.,]\d+" if std[1] == "9" else rf"[.,]\d{{{len(std) - 1}}}"
    if std[0] == "Z":
        return r"Z|[+-]\d\d(?::?\d\d)?(?::?\d\d)?"
    return r"[+-]\d\d(?::?\d\d)?(?::?\d\d)?"


def _parse_part(std: str, value: str, parts: dict[str, Any]) -> None:
    if std in ("January", "Jan"):
        parts["month"] = [n[: len(value)] for n in _MONTH_NAMES].index(value) + 1
    elif std in ("2006", "06"):
        parts["year"] = (
            int(value) if std == "2006" else 1900 + int(value) + (100 if int(value) < 69 else 0)
        )
    elif std in ("01", "1"):
        parts["month"] = int(value)
    elif std in ("02", "_2", "2"):
        parts["day"] = int(value)
    elif std in ("15", "03", "3"):
        parts["hour"] = int(value)
    elif std in ("04", "4"):
        parts["minute"] = int(value)
    elif std in ("05", "5"):
        parts["second"] = int(value)
    elif std in ("PM", "pm"):
        parts["pm"] = value.upper() == "PM"
    elif std[0] in ".,":
        parts["micro"] = int((value[1:] + "000000")[:6])
    elif std == "MST":
        parts["zone"] = value
    elif std[0] in "Z-" and std != "-":
        parts["offset"] = 0 if value == "Z" else _offset_seconds(value)


def _offset_seconds(text: str) -> int:
    digits = text[1:].replace(":", "")
    hh, mm, ss = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    return (1 if text[0] == "+" else -1) * (hh * 3600 + mm * 60 + ss)


def _fixed_zone(offset: int) -> tzinfo:
    return UTC if offset == 0 else timezone(timedelta(seconds=offset), "")


def load_location(name: str) -> tzinfo:
    """time.LoadLocation: "" and "UTC" are UTC, "Local" is UTC here; GoError if unknown."""
    if name in ("", "UTC", "Local"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise GoError(f"unknown time zone {name}") from None


# -- durations


_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9,
          "m": 60 * 10**9, "h": 3600 * 10**9}  # fmt: skip
_DURATION = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """time.ParseDuration: ``1h30m``, ``-1.5h``, ``300ms``; nanoseconds, GoError if invalid."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if body == "0":
        return 0
    pos, total = 0, 0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        number, unit = match.groups()
        whole, _, frac = number.partition(".")
        nanos = int(whole or 0) * _UNITS[unit]
        if frac:
            nanos += int(frac) * _UNITS[unit] // 10 ** len(frac)
        total += nanos
        pos = match.end()
    if not body or pos != len(body):
        raise GoError(f'time: invalid duration "{text}"')
    return sign * total


def format_duration(nanos: int) -> str:
    """time.Duration.String: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if nanos == 0:
        return "0s"
    sign, u = ("-" if nanos < 0 else ""), abs(nanos)
    if u < 10**9:
        for unit, size in (("ns", 1), ("µs", 1000), ("ms", 10**6)):
            if u < size * 1000:
                return sign + _frac(u, size) + unit
    hours, rest = divmod(u, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _frac(rest, 10**9) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _frac(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    digits = str(frac).rjust(len(str(size)) - 1, "0").rstrip("0") if size > 1 else ""
    return f"{whole}.{digits}" if digits else str(whole)


def to_time(value: Any) -> GoTime | None:
    """sprig's date functions: a time.Time, or Unix seconds as int, int64 or int32."""
    if isinstance(value, GoTime) and value.kind == "time":
        return value
    if is_int(value) and type(value).__name__ in ("int", "Int64", "Int32"):
        return GoTime(_EPOCH + timedelta(seconds=int(value)), "time")
    return None
