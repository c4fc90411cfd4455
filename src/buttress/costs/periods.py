"""UTC calendar periods for budgets: days and months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

PeriodKind = Literal["daily", "monthly"]


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """One calendar period: ``start <= t < end`` in wall-clock epoch seconds."""

    kind: PeriodKind
    label: str  # "2025-01-31" or "2025-01"
    start: float
    end: float

    def contains(self, wall: float) -> bool:
        return self.start <= wall < self.end

    @property
    def start_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)


def period_at(kind: PeriodKind, wall: float) -> PeriodWindow:
    """The period of ``kind`` that contains the instant ``wall``."""
    moment = datetime.fromtimestamp(wall, UTC)
    if kind == "daily":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
        label = start.strftime("%Y-%m-%d")
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start.replace(year=start.year + 1, month=1) if start.month == 12
               else start.replace(month=start.month + 1))
        label = start.strftime("%Y-%m")
    return PeriodWindow(kind, label, start.timestamp(), end.timestamp())
