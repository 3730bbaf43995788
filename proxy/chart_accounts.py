"""Opens ledger accounts by their chart name on first use, and remembers which are open (per app)."""

from __future__ import annotations

from collections.abc import Iterable

from ledger import Ledger, chart

__all__ = ["ChartAccounts"]


class ChartAccounts:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._open: set[str] = set()

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    async def ensure(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self._open:
                continue
            spec = chart.spec_for(name)
            await self._ledger.ensure_account(
                name, type=spec.type, unit=chart.unit_for(name), flags=spec.flags
            )
            self._open.add(name)
