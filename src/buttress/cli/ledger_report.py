"""How ledger records are shown: short ids, local times, milliseconds, tokens and dollars."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from buttress.ledger import CallRecord

SHORT_ID = 12


def short_id(call_id: str) -> str:
    # ids start with a timestamp shared by calls made together; the random tail tells them apart
    return call_id[-SHORT_ID:]


def local_time(epoch: float, *, short: bool = False, full: bool = False) -> str:
    """Local time: ``MM-DD HH:MM`` when ``short``, ISO with the zone when ``full``."""
    moment = datetime.fromtimestamp(epoch).astimezone()
    if full:
        return moment.isoformat()
    return moment.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def usd(value: float | None, places: int = 6) -> str:
    return "-" if value is None else f"${value:.{places}f}"


def prompt_ref(record: CallRecord) -> str:
    if not record.prompt_name:
        return "-"
    commit = f" ({record.prompt_commit})" if record.prompt_commit else ""
    return f"{record.prompt_name}@{record.prompt_version or '?'}{commit}"


def served(record: CallRecord) -> str:
    if not record.provider:
        return "-"
    return f"{record.provider}/{record.model_served or record.model_requested}"


def status_text(status: str, error_kind: str | None = None) -> Text:
    style = {"ok": "green", "cancelled": "yellow", "miss": "yellow"}.get(status, "red")
    label = status if status == "ok" or not error_kind else f"{status}: {error_kind}"
    return Text(label, style=style)
