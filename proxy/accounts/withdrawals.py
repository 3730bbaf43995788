"""Withdrawals: a wallet takes its prepaid credit back as tokens sent from the settlement wallet.

Order of work, each step durable before the next: verify the signed request → hold the amount on the
wallet's credit (the ledger's hold is what makes concurrent withdrawals unable to exceed the credit) →
store the withdrawal row → sign the transfer and store its hash and raw bytes (`before_send`) → send →
on a mined transfer capture the hold (credit:wallet → in_transit) and book in_transit → cash with the
transfer's `network:tx:log` as external reference; on a definitive failure void the hold.

Crash safety: every status change is a conditional UPDATE (compare-and-set on the status), so a live
request and recovery (proxy/accounts/withdrawal_recovery.py, in this or another process) can never both
move one withdrawal on. `held → sent` happens in `before_send`, so a withdrawal released by recovery can
never be signed and sent afterwards; `held|sent → voiding → failed` marks the release before the hold is
voided, so a crash in between is finished by recovery too. Booking is idempotent (fixed keys per id).

Why through in_transit: `Ledger.capture` cannot carry an external_ref, and releasing the hold before a plain
posting would let a concurrent request spend the money in between. The two postings net in_transit to zero.

The token transfer itself is a `TransferSender`: the Settler's `transfer(asset, to, amount_atomic, *,
before_send)` (shared nonce manager, on branch `watcher`), or any object of that shape (tests use web3).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import sqlalchemy as sa
import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import (
    HoldAlreadyResolved,
    HoldExpired,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerTransaction,
    chart,
)
from ledger.types import HoldState
from proxy.accounts.errors import (
    Conflict,
    InsufficientCredit,
    ServiceUnavailable,
    SignatureMismatch,
    WithdrawalInvalid,
)
from proxy.accounts.signatures import ADDRESS_PATTERN, NONCE_PATTERN, recover_signer, withdrawal_message
from proxy.accounts.siwe import SiweScope, check_siwe_scope, parse_siwe
from proxy.chart_accounts import ChartAccounts
from proxy.db.tables import account_withdrawals
from proxy.errors import UpstreamFailed
from proxy.faults import crash_if_enabled
from proxy.money import atomic_to_nano_usd
from proxy.payments.booking import WITHDRAWAL_GAS_CODE, book_gas, book_gas_spent
from proxy.payments.errors import CHAIN_RETRY_AFTER_S, PaymentChainUnavailable
from proxy.settings import AccountsSettings, AssetSettings, Settings
from x402.errors import ChainUnavailable, TransactionFailed, X402Error
from x402.settle import GasSpent, SignedSettlement

__all__ = [
    "UNFINISHED_WITHDRAWAL_STATUSES",
    "WITHDRAWAL_HOLD_CODE",
    "WITHDRAWAL_SETTLED_CODE",
    "BeforeSendTransfer",
    "MinedTransfer",
    "TransferSender",
    "WithdrawalRecord",
    "WithdrawalRequest",
    "WithdrawalStatus",
    "Withdrawals",
]

WITHDRAWAL_HOLD_CODE = "withdrawal"
WITHDRAWAL_SETTLED_CODE = "withdrawal_settled"
INT64_MAX = 2**63 - 1
log = structlog.get_logger("megarouter.withdrawals")

BeforeSendTransfer = Callable[[SignedSettlement], Awaitable[None]]


class MinedTransfer(Protocol):
    @property
    def tx_hash(self) -> str: ...
    @property
    def block_number(self) -> int: ...
    @property
    def transfer_log_index(self) -> int | None: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def effective_gas_price_wei(self) -> int: ...


class TransferSender(Protocol):
    """Sends `amount_atomic` of `asset` from the settlement wallet to `to` and awaits the receipt.

    Must call `before_send` with the signed transaction before sending it, raise `TransactionFailed` when
    it was mined and reverted, and raise another X402Error (SettlementPending, SettlementSendFailed, ...)
    when the outcome is unknown.
    """

    @property
    def address(self) -> str: ...

    async def transfer(
        self, asset: str, to: str, amount_atomic: int, *, before_send: BeforeSendTransfer | None = None
    ) -> MinedTransfer: ...


class WithdrawalStatus:
    HELD = "held"  # money held, nothing signed yet
    SENT = "sent"  # signed and (maybe) sent; outcome unknown until a receipt is seen
    VOIDING = "voiding"  # definitively not sent, reverted or never minable; the hold is being voided
    COMPLETED = "completed"  # mined and booked
    FAILED = "failed"  # definitively not sent or reverted; the hold is voided


# What recovery must finish: nothing is final until the hold is captured and booked, or voided.
UNFINISHED_WITHDRAWAL_STATUSES = (WithdrawalStatus.HELD, WithdrawalStatus.SENT, WithdrawalStatus.VOIDING)


class _TakenOver(Exception):
    """Raised from `before_send` when the record left `held` (recovery released it): nothing is sent."""


class WithdrawalRequest(BaseModel):
    """The body of POST /v1/credits/withdraw: the terms, the EIP-4361 `message` that states them for this
    server's scope (exactly `withdrawal_message(...)`), and the wallet's EIP-191 `signature` over it."""

    # Strict: "10" or true is not an amount or a time (as in every request model).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    address: str = Field(pattern=ADDRESS_PATTERN)
    asset: str = Field(pattern=ADDRESS_PATTERN)
    amount_atomic: int = Field(gt=0, le=INT64_MAX // 1_000_000_000)
    destination: str = Field(pattern=ADDRESS_PATTERN)
    nonce: str = Field(pattern=NONCE_PATTERN)
    issued_at_unix_s: int = Field(ge=0, le=INT64_MAX)
    expires_at_unix_s: int = Field(gt=0, le=INT64_MAX)
    message: str = Field(min_length=1, max_length=2_000)
    signature: str = Field(min_length=130, max_length=132)


class WithdrawalRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    wallet: str
    network: str
    asset: str
    destination: str
    amount_atomic: int
    amount_nano_usd: int
    status: str
    hold_id: int
    tx_hash: str | None
    block_number: int | None
    transfer_log_index: int | None
    ledger_transaction_id: int | None
    error_reason: str | None


def _record(row: sa.RowMapping) -> WithdrawalRecord:
    return WithdrawalRecord.model_validate({name: row[name] for name in WithdrawalRecord.model_fields})


class Withdrawals:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        accounts: ChartAccounts,
        settings: Settings,
        accounts_settings: AccountsSettings,
        scope: SiweScope,
        sender: TransferSender | None,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        # Withdrawals are paid on the server's chain; a message bound to another chain id means another chain.
        assert scope.chain_id == settings.chain_id
        self._scope = scope
        self._engine = engine
        self._accounts = accounts
        self._settings = settings
        self._accounts_settings = accounts_settings
        self._sender = sender
        self._clock_unix_s = clock_unix_s

    def _asset(self, address: str) -> AssetSettings:
        for asset in self._settings.assets:
            if asset.address.lower() == address.lower():
                return asset
        raise WithdrawalInvalid(
            f"asset {address} is not one MegaRouter pays out", code="unsupported_asset", param="asset"
        )

    @property
    def scope(self) -> SiweScope:
        return self._scope

    def _verify(self, request: WithdrawalRequest) -> AssetSettings:
        """Guard clauses over the signed request; each refusal has its own code and changes nothing."""
        if request.destination.lower() != request.address.lower():
            raise WithdrawalInvalid(
                "a withdrawal can only be sent to the wallet that owns the credit",
                code="invalid_destination",
                param="destination",
            )
        self._check_times(request)
        asset = self._asset(request.asset)
        # Scope first, so a signature phished for another site, URI or chain is refused as exactly that.
        check_siwe_scope(parse_siwe(request.message), self._scope)
        expected = withdrawal_message(
            scope=self._scope,
            wallet=request.address,
            asset=request.asset,
            amount_atomic=request.amount_atomic,
            destination=request.destination,
            nonce=request.nonce,
            issued_at_unix_s=request.issued_at_unix_s,
            expires_at_unix_s=request.expires_at_unix_s,
        )
        if request.message != expected:
            raise WithdrawalInvalid(
                "message is not the canonical text of this withdrawal's terms",
                code="withdrawal_message_mismatch",
                param="message",
            )
        signer = recover_signer(expected, request.signature)
        if signer != request.address.lower():
            raise SignatureMismatch(
                f"withdrawal was signed by {signer}, not by {request.address.lower()}", param="signature"
            )
        return asset

    def _check_times(self, request: WithdrawalRequest) -> None:
        now = int(self._clock_unix_s())
        validity_s_max = self._accounts_settings.withdrawal_request_validity_s_max
        if request.expires_at_unix_s <= now:
            raise WithdrawalInvalid(
                "this withdrawal request has expired", code="withdrawal_expired", param="expires_at_unix_s"
            )
        if request.expires_at_unix_s > now + validity_s_max:
            raise WithdrawalInvalid(
                f"expires_at_unix_s may be at most {validity_s_max} s ahead",
                code="withdrawal_expiry_too_far",
                param="expires_at_unix_s",
            )
        if request.issued_at_unix_s > now + self._accounts_settings.signed_clock_skew_s_max:
            raise WithdrawalInvalid(
                "issued_at_unix_s is in the future", code="withdrawal_not_yet_valid", param="issued_at_unix_s"
            )
        if request.issued_at_unix_s >= request.expires_at_unix_s:
            raise WithdrawalInvalid(
                "issued_at_unix_s must be before expires_at_unix_s",
                code="withdrawal_window_invalid",
                param="issued_at_unix_s",
            )

    async def withdraw(self, request: WithdrawalRequest) -> WithdrawalRecord:
        asset = self._verify(request)
        return await self._withdraw_verified(
            wallet=request.address.lower(),
            asset=asset,
            amount_atomic=request.amount_atomic,
            nonce=request.nonce,
        )

    async def withdraw_by_policy(
        self, *, wallet: str, asset: AssetSettings, amount_atomic: int, nonce: str
    ) -> WithdrawalRecord:
        """The operator's credit-return policy (proxy/accounts/credit_return.py): the same hold, row, send
        and booking as a signed withdrawal, to the wallet itself, under a nonce the policy derives (so a
        rerun of the same period finds the row instead of sending twice)."""
        assert amount_atomic > 0
        return await self._withdraw_verified(
            wallet=wallet.lower(), asset=asset, amount_atomic=amount_atomic, nonce=nonce
        )

    async def _withdraw_verified(
        self, *, wallet: str, asset: AssetSettings, amount_atomic: int, nonce: str
    ) -> WithdrawalRecord:
        if self._sender is None:
            raise ServiceUnavailable(
                "withdrawals are not available on this server", code="withdrawals_unavailable"
            )
        network = self._settings.network
        amount_nano_usd = atomic_to_nano_usd(amount_atomic, decimals=asset.decimals)
        credit = chart.credit_wallet(wallet)
        transit = chart.in_transit(network, asset.address)
        await self._accounts.ensure(
            [credit, transit, chart.cash(network, asset.address, self._sender.address)]
        )
        try:
            hold = await self._accounts.ledger.hold(
                idempotency_key=f"withdrawal:{wallet}:{nonce}",
                code=WITHDRAWAL_HOLD_CODE,
                debit_account=credit,
                credit_account=transit,
                amount=amount_nano_usd,
                timeout_s=self._accounts_settings.withdrawal_hold_timeout_s,
                metadata={
                    "wallet": wallet,
                    "asset": asset.address.lower(),
                    "amount_atomic": amount_atomic,
                    "request_nonce": nonce,
                },
            )
        except InsufficientFunds as error:
            balance = await self._accounts.ledger.balance(credit)
            raise InsufficientCredit(
                f"withdrawal of {amount_nano_usd} nano-USD exceeds the available {balance.available}",
                param="amount_atomic",
            ) from error
        except IdempotencyConflict as error:
            raise Conflict(
                "this withdrawal nonce was already used", code="withdrawal_nonce_used", param="nonce"
            ) from error
        if hold.state is not HoldState.PENDING:
            raise Conflict(
                "this withdrawal nonce was already used", code="withdrawal_nonce_used", param="nonce"
            )
        record = await self._insert(
            wallet=wallet,
            nonce=nonce,
            asset=asset.address,
            amount_atomic=amount_atomic,
            network=network,
            amount_nano_usd=amount_nano_usd,
            hold_id=hold.id,
        )
        log.info("withdrawal_held", withdrawal_id=record.id, wallet=wallet, amount_atomic=amount_atomic)
        crash_if_enabled(self._settings.fault_injection, "after_withdrawal_held")
        return await self._send(record)

    async def _insert(
        self,
        *,
        wallet: str,
        nonce: str,
        asset: str,
        amount_atomic: int,
        network: str,
        amount_nano_usd: int,
        hold_id: int,
    ) -> WithdrawalRecord:
        now = int(self._clock_unix_s())
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    account_withdrawals.insert().values(
                        wallet=wallet,
                        request_nonce=nonce,
                        network=network,
                        asset=asset.lower(),
                        # Always the wallet itself (a signed request naming another is refused).
                        destination=wallet,
                        amount_atomic=amount_atomic,
                        amount_nano_usd=amount_nano_usd,
                        status=WithdrawalStatus.HELD,
                        hold_id=hold_id,
                        created_at_unix_s=now,
                        updated_at_unix_s=now,
                    )
                )
                assert result.inserted_primary_key is not None
                withdrawal_id = result.inserted_primary_key[0]
        except IntegrityError as error:
            # A concurrent copy of the same signed request replayed the same hold and stored its row first.
            raise Conflict(
                "this withdrawal nonce was already used", code="withdrawal_nonce_used", param="nonce"
            ) from error
        return await self.get(int(withdrawal_id))

    async def get(self, withdrawal_id: int) -> WithdrawalRecord:
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(account_withdrawals).where(account_withdrawals.c.id == withdrawal_id)
                    )
                )
                .mappings()
                .one()
            )
        return _record(row)

    @property
    def sender(self) -> TransferSender | None:
        return self._sender

    async def _transition(
        self, withdrawal_id: int, *, from_statuses: tuple[str, ...], to: str, **values: object
    ) -> bool:
        """Moves the record on only from `from_statuses`; False when another worker moved it first."""
        assert from_statuses
        async with self._engine.begin() as conn:
            result = await conn.execute(
                account_withdrawals.update()
                .where(account_withdrawals.c.id == withdrawal_id)
                .where(account_withdrawals.c.status.in_(from_statuses))
                .values(status=to, updated_at_unix_s=int(self._clock_unix_s()), **values)
            )
        assert result.rowcount in (0, 1)
        return result.rowcount == 1

    async def unfinished(self, *, older_than_s: float = 0.0, limit: int = 100) -> list[WithdrawalRecord]:
        """Open withdrawals untouched for `older_than_s` (younger ones may belong to live requests)."""
        assert older_than_s >= 0
        assert 0 < limit <= 10_000
        cutoff_unix_s = int(self._clock_unix_s() - older_than_s)  # Floor: only ever older, never younger.
        table = account_withdrawals
        statement = (
            sa.select(table)
            .where(table.c.status.in_(UNFINISHED_WITHDRAWAL_STATUSES))
            .where(table.c.updated_at_unix_s <= cutoff_unix_s)
            .order_by(table.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_record(row) for row in rows]

    async def signed_transfer(self, record: WithdrawalRecord) -> SignedSettlement:
        """The signed transaction stored by `before_send`, as recovery hands it back to the Settler."""
        assert record.status == WithdrawalStatus.SENT
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(
                            account_withdrawals.c.raw_tx,
                            account_withdrawals.c.tx_hash,
                            account_withdrawals.c.tx_nonce,
                            account_withdrawals.c.from_block,
                        ).where(account_withdrawals.c.id == record.id)
                    )
                )
                .mappings()
                .one()
            )
        assert row["raw_tx"] is not None, f"withdrawal {record.id} is sent without a stored transaction"
        assert row["tx_nonce"] is not None
        assert row["from_block"] is not None
        return SignedSettlement(
            raw_tx=bytes.fromhex(str(row["raw_tx"]).removeprefix("0x")),
            tx_hash=str(row["tx_hash"]),
            tx_nonce=int(row["tx_nonce"]),
            from_block=int(row["from_block"]),
        )

    async def _send(self, record: WithdrawalRecord) -> WithdrawalRecord:
        assert self._sender is not None
        assert record.status == WithdrawalStatus.HELD
        signed_seen = False

        async def before_send(signed: SignedSettlement) -> None:
            nonlocal signed_seen
            moved = await self._transition(
                record.id,
                from_statuses=(WithdrawalStatus.HELD,),
                to=WithdrawalStatus.SENT,
                tx_hash=signed.tx_hash,
                raw_tx="0x" + signed.raw_tx.hex(),
                tx_nonce=signed.tx_nonce,
                from_block=signed.from_block,
            )
            if not moved:
                raise _TakenOver(f"withdrawal {record.id} was released by recovery before it was sent")
            signed_seen = True
            crash_if_enabled(self._settings.fault_injection, "after_withdrawal_signed")

        try:
            mined = await self._sender.transfer(
                record.asset, record.destination, record.amount_atomic, before_send=before_send
            )
        except _TakenOver as error:
            raise Conflict(str(error) + "; the credit is released", code="withdrawal_abandoned") from error
        except TransactionFailed as error:
            await self.book_reverted_gas(record, error)
            await self.release(record, reason=error.reason, detail=str(error))
            raise self._failed(record, error.reason) from error
        except (ChainUnavailable, X402Error) as error:
            if not signed_seen:
                # Nothing was signed, so nothing can ever be mined: releasing the credit is safe.
                await self.release(record, reason=error.reason, detail=str(error))
                if isinstance(error, ChainUnavailable):
                    # The chain, not the request, failed: a 503 says "later", not "this can never work".
                    raise PaymentChainUnavailable(
                        f"the chain is unreachable; withdrawal {record.id} was not sent and the credit is "
                        "released: sign a new request (new nonce) to try again",
                        retry_after_s=CHAIN_RETRY_AFTER_S,
                    ) from error
                raise self._failed(record, error.reason) from error
            log.warning("withdrawal_outcome_unknown", withdrawal_id=record.id, reason=error.reason)
            return await self.get(record.id)
        crash_if_enabled(self._settings.fault_injection, "after_withdrawal_mined")
        return await self.book(record, mined)

    @staticmethod
    def _failed(record: WithdrawalRecord, reason: str) -> UpstreamFailed:
        return UpstreamFailed(
            f"withdrawal {record.id} failed on chain ({reason}); the credit is released",
            code="withdrawal_failed",
        )

    async def release(self, record: WithdrawalRecord, *, reason: str, detail: str = "") -> WithdrawalRecord:
        """Voids the hold of a withdrawal that can never move tokens; idempotent and crash-safe.

        Only for a withdrawal that was never signed, whose transaction reverted, or whose transaction nonce
        went to another transaction. `voiding` is recorded before the void, so a crash in between leaves a
        record that recovery finishes, and a live request can no longer sign it.
        """
        claimed = await self._transition(
            record.id,
            from_statuses=(WithdrawalStatus.HELD, WithdrawalStatus.SENT),
            to=WithdrawalStatus.VOIDING,
            error_reason=reason[:80],
        )
        current = await self.get(record.id)
        if not claimed and current.status != WithdrawalStatus.VOIDING:
            return current  # Another worker finished it (completed or failed) first.
        try:
            await self._accounts.ledger.void(record.hold_id, idempotency_key=f"withdrawal:{record.id}:void")
        except HoldAlreadyResolved:
            # Expired by its timeout (released all the same) or voided under another key; never captured.
            hold = await self._accounts.ledger.get_hold(record.hold_id)
            assert hold.state is not HoldState.CAPTURED, f"withdrawal {record.id}: releasing a captured hold"
        await self._transition(
            record.id, from_statuses=(WithdrawalStatus.VOIDING,), to=WithdrawalStatus.FAILED
        )
        log.warning("withdrawal_failed", withdrawal_id=record.id, reason=reason, detail=detail)
        return await self.get(record.id)

    async def book_reverted_gas(self, record: WithdrawalRecord, error: TransactionFailed) -> None:
        """A reverted transfer moved no tokens but paid gas: book it once, before the hold is released, and
        keep the transaction's block so reconciliation looks its receipt up."""
        assert self._sender is not None
        assert error.tx_hash is not None
        await book_gas_spent(
            self._accounts,
            network=record.network,
            wallet=self._sender.address,
            spent=GasSpent.of_revert(error),
            code=WITHDRAWAL_GAS_CODE,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                account_withdrawals.update()
                .where(account_withdrawals.c.id == record.id)
                .where(account_withdrawals.c.status == WithdrawalStatus.SENT)
                .values(tx_hash=error.tx_hash, block_number=error.block_number)
            )

    async def _capture(self, record: WithdrawalRecord) -> None:
        """credit:wallet → in_transit for a mined withdrawal: the hold's capture, or a late posting."""
        ledger = self._accounts.ledger
        try:
            await ledger.capture(
                record.hold_id, record.amount_nano_usd, idempotency_key=f"withdrawal:{record.id}:capture"
            )
            return
        except (HoldExpired, HoldAlreadyResolved):
            hold = await ledger.get_hold(record.hold_id)
            assert hold.state is HoldState.EXPIRED, f"withdrawal {record.id}: hold {hold.state}, not mined"
        # Mined after its hold expired (a chain stalled for longer than the hold timeout): the tokens left
        # all the same, so take them from the credit now. This may find the credit spent; then it raises
        # InsufficientFunds, the record stays `sent`, and reconciliation shows the break to an operator.
        await ledger.post(
            idempotency_key=f"withdrawal:{record.id}:capture_after_expiry",
            code=WITHDRAWAL_HOLD_CODE,
            postings=[
                (chart.credit_wallet(record.wallet), record.amount_nano_usd),
                (chart.in_transit(record.network, record.asset), -record.amount_nano_usd),
            ],
            metadata={"withdrawal_id": record.id, "hold_id": record.hold_id},
        )

    async def book(self, record: WithdrawalRecord, mined: MinedTransfer) -> WithdrawalRecord:
        """Books a mined withdrawal once, however often it is called (live request, recovery, replicas)."""
        # Every ERC-20 transfer emits Transfer; without its log there is nothing to reference.
        assert mined.transfer_log_index is not None, f"no Transfer log in {mined.tx_hash}"
        assert self._sender is not None
        await self._capture(record)
        await book_gas(
            self._accounts,
            network=record.network,
            wallet=self._sender.address,
            tx_hash=mined.tx_hash,
            block_number=mined.block_number,
            gas_used=mined.gas_used,
            effective_gas_price_wei=mined.effective_gas_price_wei,
            code=WITHDRAWAL_GAS_CODE,
        )
        transaction: LedgerTransaction = await self._accounts.ledger.post(
            idempotency_key=f"withdrawal:{record.id}:settled",
            code=WITHDRAWAL_SETTLED_CODE,
            external_ref=f"{record.network}:{mined.tx_hash}:{mined.transfer_log_index}".lower(),
            postings=[
                (chart.in_transit(record.network, record.asset), record.amount_nano_usd),
                (chart.cash(record.network, record.asset, self._sender.address), -record.amount_nano_usd),
            ],
            metadata={
                "withdrawal_id": record.id,
                "wallet": record.wallet,
                "tx_hash": mined.tx_hash,
                "amount_atomic": record.amount_atomic,
            },
        )
        completed = await self._transition(
            record.id,
            from_statuses=(WithdrawalStatus.SENT,),
            to=WithdrawalStatus.COMPLETED,
            tx_hash=mined.tx_hash,
            block_number=mined.block_number,
            transfer_log_index=mined.transfer_log_index,
            ledger_transaction_id=transaction.id,
        )
        current = await self.get(record.id)
        # A mined transfer is never released; the only other writer can be a concurrent booking.
        assert current.status == WithdrawalStatus.COMPLETED, f"withdrawal {record.id} is {current.status}"
        if completed:
            log.info(
                "withdrawal_completed",
                withdrawal_id=record.id,
                tx_hash=mined.tx_hash,
                amount_atomic=record.amount_atomic,
            )
        return current
