"""The project's ledger store for the commands that read it, and finding a call by a short id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from buttress.cli.console import print_error
from buttress.cli.project import config_path
from buttress.config import Config, load_config
from buttress.errors import UsageError
from buttress.ledger import AttemptRecord, CallFilter, CallRecord, LedgerStore
from buttress.ledger.open import open_store

EXIT_UNKNOWN = 1
MIN_REF = 4
_PAGE = 10_000
_SHOWN = 5


class UnknownCall(UsageError):
    """No recorded call has this id (or prefix or suffix)."""


class AmbiguousCall(UsageError):
    """Several recorded calls match a short id."""


@contextmanager
def ledger_store(project: Path) -> Iterator[tuple[Config, LedgerStore]]:
    """The project's config and its ledger store, closed on exit.

    A SQLite ledger that does not exist yet is an error rather than created: reading commands
    should not leave an empty database behind a typo in ``--project``.
    """
    config = load_config(config_path(project))
    url = config.ledger.url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path = path if path.is_absolute() else project / path
        if not path.is_file():
            raise UsageError(f"no ledger at {path}: no call has been recorded in this project yet")
    store = open_store(url, base_dir=project)
    try:
        yield config, store
    finally:
        store.close()


def resolve_call_id(store: LedgerStore, ref: str) -> str:
    """The full id of the one call whose id is ``ref``, or starts or ends with it.

    Ids begin with a timestamp, so calls made close together share long prefixes; ``buttress
    logs`` therefore prints the random tail, and a suffix is accepted as well as a prefix. A short
    id costs a scan of the ids in the ledger.
    """
    ref = ref.strip().lower()
    if store.get_call(ref) is not None:
        return ref
    if len(ref) < MIN_REF:
        raise UsageError(f"call id {ref!r} is too short: give at least {MIN_REF} characters")
    matches: list[str] = []
    offset = 0
    while True:
        page = store.query_calls(CallFilter(limit=_PAGE, offset=offset))
        matches += [c.call_id for c in page
                    if c.call_id.startswith(ref) or c.call_id.endswith(ref)]
        if len(page) < _PAGE:
            break
        offset += _PAGE
    if not matches:
        raise UnknownCall(f"no call with id {ref!r} in the ledger")
    if len(matches) > 1:
        shown = ", ".join(matches[:_SHOWN])
        more = f" and {len(matches) - _SHOWN} more" if len(matches) > _SHOWN else ""
        raise AmbiguousCall(f"call id {ref!r} is ambiguous: it matches {shown}{more}")
    return matches[0]


def find_call(store: LedgerStore, ref: str) -> tuple[CallRecord, list[AttemptRecord]]:
    """The call ``ref`` names with its attempts; an unknown id ends the command with exit 1."""
    try:
        call_id = resolve_call_id(store, ref)
    except UnknownCall as exc:
        print_error(str(exc))
        raise typer.Exit(EXIT_UNKNOWN) from None
    found = store.get_call(call_id)
    if found is None:  # deleted between the scan and the read
        print_error(f"no call with id {ref!r} in the ledger")
        raise typer.Exit(EXIT_UNKNOWN)
    return found
