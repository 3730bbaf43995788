"""The chain watcher: books plain token transfers to the settlement wallet as deposits, exactly once.

It follows each accepted token's `Transfer(from, to=settlement wallet, value)` logs in bounded batches,
only up to `head - confirmations`, and books each as a deposit to the sender's wallet credit:
debit `cash:<network>:<token>:<wallet>`, credit `credit:wallet:<sender>`, idempotency key
`transfer:<network>:<tx hash>:<log index>`, external_ref `<network>:<tx hash>:<log index>` (x402's own
format). So a transfer booked before (by this watcher before a crash, by another replica, or by the x402
path) is never booked twice: the same key replays, and the same external_ref raises DuplicateExternalRef,
which here means "already booked".

x402 settlements also emit a Transfer to the wallet. The x402 path owns those: a Transfer whose
transaction carries `AuthorizationUsed(sender, nonce)` and whose (network, token, sender, nonce) has a live
settlement intent is skipped, so the watcher can never race the payment gate into a DuplicateExternalRef.
An EIP-3009 transfer nobody claimed through x402 (a wallet depositing by authorization) is booked here.

Progress is a cursor per (network, token) in the proxy database, written after each batch is booked, so a
restart resumes where it stopped. With `confirmations` ≥ d, a reorganisation of depth ≤ d never touches a
scanned block. A deeper one (or any with 0 confirmations) is noticed when the hash of the cursor's last
block changed; the watcher then re-scans from `reorg_rescan_blocks` before the cursor. Bookings of the
surviving chain are idempotent; a deposit booked from a block that was then dropped is not reversed here
(reconciliation reports it as missing on chain).

Imports: ledger, x402 (errors, log topics) and proxy modules; never aiohttp handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import DuplicateExternalRef, Posting, chart
from proxy.chain.transfers import (
    ZERO_ADDRESS,
    AuthorizationUse,
    TransferLog,
    bounded_rpc,
    fetch_authorization_uses,
    fetch_transfer_logs,
    transfer_external_ref,
)
from proxy.chain.watch_store import ChainWatchCursor, ChainWatchStore
from proxy.chart_accounts import ChartAccounts
from proxy.db.tables import x402_settlements
from proxy.money import atomic_to_nano_usd
from proxy.payments.intents import SettlementStatus
from proxy.settings import Settings

__all__ = [
    "TRANSFER_DEPOSIT_CODE",
    "ChainWatcher",
    "PollReport",
    "WatchedToken",
    "WatcherSettings",
    "transfer_deposit_key",
    "watcher_settings_from",
]

log = structlog.get_logger("megarouter.chain_watcher")

TRANSFER_DEPOSIT_CODE = "transfer_deposit"
# The ledger stores amounts as signed 64-bit integers.
_INT64_MAX = 2**63 - 1
# Intents in these states will never book their transfer through x402, so the watcher must.
_X402_DEAD_STATUSES = (SettlementStatus.FAILED.value, SettlementStatus.ABANDONED.value)


class WatchedToken(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    decimals: int = Field(default=6, ge=0, le=9)


class WatcherSettings(BaseModel):
    """What the watcher needs; the lead maps these from `Settings` (see `watcher_settings_from`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    network: str = Field(pattern=r"^eip155:[0-9]{1,32}$")
    settlement_wallet: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    tokens: tuple[WatchedToken, ...] = Field(min_length=1)
    # Blocks built on top of a block before its transfers are booked: 0 books the head block itself.
    confirmations: int = Field(default=3, ge=0, le=10_000)
    poll_interval_s: float = Field(default=2.0, gt=0, le=3_600)
    blocks_per_batch_max: int = Field(default=2_000, ge=1, le=100_000)
    batches_per_poll_max: int = Field(default=20, ge=1, le=10_000)
    # How far before the cursor to re-scan once a reorganisation of scanned blocks is noticed.
    reorg_rescan_blocks: int = Field(default=64, ge=1, le=100_000)
    # Where to start when no cursor is stored yet; None starts at the confirmed head (future transfers only).
    start_block: int | None = Field(default=None, ge=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0, le=300)


def watcher_settings_from(settings: Settings, *, settlement_wallet: str, **overrides: Any) -> WatcherSettings:
    """The watcher's settings for an app: network, wallet and tokens from `Settings`, the rest defaults."""
    fields: dict[str, Any] = {
        "enabled": settings.chain_watcher_enabled,
        "confirmations": settings.chain_watch_confirmations,
        "poll_interval_s": settings.chain_watch_poll_interval_s,
        "start_block": settings.chain_watch_start_block,
        "rpc_timeout_s": settings.rpc_timeout_s,
    }
    return WatcherSettings(
        network=settings.network,
        settlement_wallet=settlement_wallet,
        tokens=tuple(WatchedToken(address=a.address, decimals=a.decimals) for a in settings.assets),
        **(fields | overrides),
    )


class PollReport(BaseModel):
    """What one poll did, summed over tokens."""

    blocks_scanned: int = 0
    booked: int = 0
    already_booked: int = 0
    skipped_x402: int = 0
    skipped_other: int = 0
    cursors_rewound: int = 0


def transfer_deposit_key(network: str, tx_hash: str, log_index: int) -> str:
    return f"transfer:{transfer_external_ref(network, tx_hash, log_index)}"


class ChainWatcher:
    """Scans and books; `poll_once` is one bounded pass, `run` polls forever (cancel it to stop)."""

    def __init__(
        self,
        w3: Any,
        *,
        settings: WatcherSettings,
        accounts: ChartAccounts,
        engine: AsyncEngine,
        credit_account_for: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        """`credit_account_for(sender)`: the credit account a sender's transfers go to when it is not the
        sender's own (a wallet registered to an organization deposits to the org's credit); None: its own."""
        self._w3 = w3
        self._credit_account_for = credit_account_for
        self._settings = settings
        self._accounts = accounts
        self._engine = engine
        self._store = ChainWatchStore(engine)
        self._wallet = settings.settlement_wallet.lower()
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> WatcherSettings:
        return self._settings

    async def run(self) -> None:
        """Polls until cancelled; a failed poll is logged and retried after the interval."""
        while True:
            try:
                report = await self.poll_once()
                if report.booked or report.cursors_rewound:
                    log.info("chain_watch_poll", **report.model_dump())
            except Exception:  # A periodic task logs and tries again; it must not die silently.
                log.exception("chain_watch_poll_failed", network=self._settings.network)
            await asyncio.sleep(self._settings.poll_interval_s)

    async def poll_once(self) -> PollReport:
        """Scans each token from its cursor to the confirmed head, at most `batches_per_poll_max` batches."""
        report = PollReport()
        async with self._lock:
            head = int(await self._rpc(self._w3.eth.block_number, "eth_blockNumber"))
            safe_head = head - self._settings.confirmations
            for token in self._settings.tokens:
                await self._poll_token(token, head=head, safe_head=safe_head, report=report)
        assert report.blocks_scanned >= 0
        return report

    async def _rpc(self, call: Any, what: str) -> Any:
        return await bounded_rpc(call, what, timeout_s=self._settings.rpc_timeout_s)

    async def _block_hash(self, number: int) -> str:
        block = await self._rpc(self._w3.eth.get_block(number), "eth_getBlockByNumber")
        return HexBytes(block["hash"]).to_0x_hex().lower()

    async def _start_block(
        self, cursor: ChainWatchCursor | None, *, head: int, safe_head: int, report: PollReport
    ) -> int:
        """The first block to scan: the cursor's, or earlier when the cursor's last block was replaced."""
        if cursor is None:
            start = self._settings.start_block
            return max(safe_head + 1, 0) if start is None else start
        last_scanned = cursor.next_block - 1
        if cursor.last_block_hash is None or last_scanned < 0:
            return cursor.next_block
        replaced = last_scanned > head or await self._block_hash(last_scanned) != cursor.last_block_hash
        if not replaced:
            return cursor.next_block
        report.cursors_rewound += 1
        floor = self._settings.start_block or 0
        rescan_from = max(floor, cursor.next_block - self._settings.reorg_rescan_blocks, 0)
        log.warning(
            "chain_reorg_detected",
            network=self._settings.network,
            block_number=last_scanned,
            rescan_from_block=rescan_from,
        )
        return rescan_from

    async def _poll_token(
        self, token: WatchedToken, *, head: int, safe_head: int, report: PollReport
    ) -> None:
        network, asset = self._settings.network, token.address.lower()
        cursor = await self._store.get(network=network, asset=asset)
        from_block = await self._start_block(cursor, head=head, safe_head=safe_head, report=report)
        if cursor is None:
            # Remember the starting point at once, so a restart before the first batch resumes there.
            await self._store.put(
                ChainWatchCursor(network=network, asset=asset, next_block=from_block, last_block_hash=None)
            )
        for _ in range(self._settings.batches_per_poll_max):
            if from_block > safe_head:
                break
            to_block = min(from_block + self._settings.blocks_per_batch_max - 1, safe_head)
            # The hash is read before the logs: a reorganisation in between changes it and forces a re-scan.
            to_hash = await self._block_hash(to_block)
            await self._scan_batch(token, from_block=from_block, to_block=to_block, report=report)
            await self._store.put(
                ChainWatchCursor(
                    network=network, asset=asset, next_block=to_block + 1, last_block_hash=to_hash
                )
            )
            report.blocks_scanned += to_block - from_block + 1
            from_block = to_block + 1

    async def _scan_batch(
        self, token: WatchedToken, *, from_block: int, to_block: int, report: PollReport
    ) -> None:
        timeout_s = self._settings.rpc_timeout_s
        transfers = await fetch_transfer_logs(
            self._w3,
            token.address,
            from_block=from_block,
            to_block=to_block,
            recipient=self._wallet,
            rpc_timeout_s=timeout_s,
        )
        if not transfers:
            return
        uses = await fetch_authorization_uses(
            self._w3, token.address, from_block=from_block, to_block=to_block, rpc_timeout_s=timeout_s
        )
        for transfer in transfers:
            await self._book(token, transfer, uses, report)

    async def _book(
        self, token: WatchedToken, transfer: TransferLog, uses: Sequence[AuthorizationUse], report: PollReport
    ) -> None:
        network = self._settings.network
        external_ref = transfer_external_ref(network, transfer.tx_hash, transfer.log_index)
        skip_reason = self._skip_reason(token, transfer)
        if skip_reason is not None:
            # Not a customer deposit; reconciliation shows it as a movement the ledger must explain.
            log.warning(
                "chain_transfer_not_booked",
                reason=skip_reason,
                external_ref=external_ref,
                sender=transfer.sender,
                value_atomic=transfer.value_atomic,
            )
            report.skipped_other += 1
            return
        if await self._owned_by_x402(transfer, uses):
            report.skipped_x402 += 1
            return
        if await self._accounts.ledger.transaction_by_external_ref(external_ref) is not None:
            report.already_booked += 1
            return
        amount_nano_usd = atomic_to_nano_usd(transfer.value_atomic, decimals=token.decimals)
        cash_account = chart.cash(network, transfer.asset, self._wallet)
        credit_account = chart.credit_wallet(transfer.sender)
        if self._credit_account_for is not None:
            credit_account = await self._credit_account_for(transfer.sender) or credit_account
        await self._accounts.ensure([cash_account, credit_account])
        try:
            await self._accounts.ledger.post(
                idempotency_key=transfer_deposit_key(network, transfer.tx_hash, transfer.log_index),
                code=TRANSFER_DEPOSIT_CODE,
                external_ref=external_ref,
                postings=[
                    Posting(account=cash_account, amount=amount_nano_usd),
                    Posting(account=credit_account, amount=-amount_nano_usd),
                ],
                metadata={
                    "sender": transfer.sender,
                    "asset": transfer.asset,
                    "value_atomic": transfer.value_atomic,
                    "tx_hash": transfer.tx_hash,
                    "log_index": transfer.log_index,
                    "block_number": transfer.block_number,
                },
            )
        except DuplicateExternalRef:
            report.already_booked += 1
            return
        report.booked += 1
        log.info(
            "chain_deposit_booked",
            external_ref=external_ref,
            sender=transfer.sender,
            amount_nano_usd=amount_nano_usd,
        )

    def _skip_reason(self, token: WatchedToken, transfer: TransferLog) -> str | None:
        if transfer.value_atomic == 0:
            return "zero_value"
        if transfer.sender == ZERO_ADDRESS:
            return "mint"
        if transfer.sender == self._wallet:
            return "self_transfer"
        if atomic_to_nano_usd(transfer.value_atomic, decimals=token.decimals) > _INT64_MAX:
            return "amount_too_large"
        return None

    async def _owned_by_x402(self, transfer: TransferLog, uses: Sequence[AuthorizationUse]) -> bool:
        """True when the transfer is an x402 settlement that the payment path books itself: an `exact` one
        by its AuthorizationUsed log, an `upto` one (a Permit2 transfer, no such log) by its transaction,
        stored on the intent before it was sent."""
        nonces = [u.nonce for u in uses if u.tx_hash == transfer.tx_hash and u.authorizer == transfer.sender]
        if not nonces:
            return await self._upto_settlement(transfer)
        table = x402_settlements
        statement = select(table.c.id).where(
            table.c.network == self._settings.network,
            table.c.asset == transfer.asset,
            table.c.payer == transfer.sender,
            table.c.authorization_nonce.in_(nonces),
            table.c.status.not_in(_X402_DEAD_STATUSES),
        )
        async with self._engine.connect() as connection:
            return (await connection.execute(statement)).first() is not None

    async def _upto_settlement(self, transfer: TransferLog) -> bool:
        table = x402_settlements
        statement = select(table.c.id).where(
            table.c.network == self._settings.network,
            table.c.scheme == "upto",
            table.c.payer == transfer.sender.lower(),
            func.lower(table.c.tx_hash) == transfer.tx_hash.lower(),
        )
        async with self._engine.connect() as connection:
            return (await connection.execute(statement)).first() is not None
