"""Points in time on the command line: ``30m``, ``2h``, ``7d`` ago, or an ISO date or datetime."""

from __future__ import annotations

import re
from datetime import datetime

from buttress.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_when(text: str, now: float, *, option: str = "--since") -> float:
    """UTC epoch seconds for ``text``: a duration before ``now`` or an ISO date/datetime.

    An ISO value without a timezone is local time, like the times ``buttress logs`` prints.
    """
    value = text.strip()
    found = _DURATION.fullmatch(value.lower())
    if found:
        return now - float(found.group(1)) * _UNITS[found.group(2)]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a duration like 30m, 2h or 7d, or an "
                         "ISO date/datetime like 2024-05-01 or 2024-05-01T13:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive: local time
    return moment.timestamp()
