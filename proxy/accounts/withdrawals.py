"""Withdrawals: a wallet takes its prepaid credit back as tokens sent from the settlement wallet.

Order of work, each step durable before the next: verify the signed request → hold the amount on the
wallet's credit (the ledger's hold is what makes concurrent withdrawals unable to exceed the credit) →
store the withdrawal row → sign the transfer and store its hash and raw bytes (`before_send`) → send →
on a mined transfer capture the hold (credit:wallet → in_transit) and book in_transit → cash with the
transfer's `network:tx:log` as external reference; on a definitive failure void the hold.

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

from ledger import IdempotencyConflict, InsufficientFunds, chart
from ledger.types import HoldState
from proxy.accounts.errors import (
    Conflict,
    InsufficientCredit,
    ServiceUnavailable,
    SignatureMismatch,
    WithdrawalInvalid,
)
from proxy.accounts.settings import AccountsSettings
from proxy.accounts.signatures import ADDRESS_PATTERN, NONCE_PATTERN, recover_signer, withdrawal_message
from proxy.chart_accounts import ChartAccounts
from proxy.db.tables import account_withdrawals
from proxy.errors import UpstreamFailed
from proxy.money import atomic_to_nano_usd
from proxy.settings import AssetSettings, Settings
from x402.errors import ChainUnavailable, TransactionFailed, X402Error
from x402.settle import SignedSettlement

__all__ = [
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
    COMPLETED = "completed"  # mined and booked
    FAILED = "failed"  # definitively not sent or reverted; the hold is voided


class WithdrawalRequest(BaseModel):
    """The body of POST /v1/credits/withdraw; `signature` is EIP-191 over `withdrawal_message(...)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(pattern=ADDRESS_PATTERN)
    asset: str = Field(pattern=ADDRESS_PATTERN)
    amount_atomic: int = Field(gt=0, le=INT64_MAX // 1_000_000_000)
    destination: str = Field(pattern=ADDRESS_PATTERN)
    nonce: str = Field(pattern=NONCE_PATTERN)
    expires_at_unix_s: int = Field(gt=0, le=INT64_MAX)
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
        sender: TransferSender | None,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
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

    def _verify(self, request: WithdrawalRequest, *, domain: str) -> AssetSettings:
        """Guard clauses over the signed request; each refusal has its own code and changes nothing."""
        now = int(self._clock_unix_s())
        validity_s_max = self._accounts_settings.withdrawal_request_validity_s_max
        if request.destination.lower() != request.address.lower():
            raise WithdrawalInvalid(
                "a withdrawal can only be sent to the wallet that owns the credit",
                code="invalid_destination",
                param="destination",
            )
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
        asset = self._asset(request.asset)
        message = withdrawal_message(
            domain=domain,
            wallet=request.address,
            network=self._settings.network,
            asset=request.asset,
            amount_atomic=request.amount_atomic,
            destination=request.destination,
            nonce=request.nonce,
            expires_at_unix_s=request.expires_at_unix_s,
        )
        signer = recover_signer(message, request.signature)
        if signer != request.address.lower():
            raise SignatureMismatch(
                f"withdrawal was signed by {signer}, not by {request.address.lower()}", param="signature"
            )
        return asset

    async def withdraw(self, request: WithdrawalRequest, *, domain: str) -> WithdrawalRecord:
        asset = self._verify(request, domain=domain)
        if self._sender is None:
            raise ServiceUnavailable(
                "withdrawals are not available on this server", code="withdrawals_unavailable"
            )
        wallet = request.address.lower()
        network = self._settings.network
        amount_nano_usd = atomic_to_nano_usd(request.amount_atomic, decimals=asset.decimals)
        credit = chart.credit_wallet(wallet)
        transit = chart.in_transit(network, asset.address)
        await self._accounts.ensure(
            [credit, transit, chart.cash(network, asset.address, self._sender.address)]
        )
        try:
            hold = await self._accounts.ledger.hold(
                idempotency_key=f"withdrawal:{wallet}:{request.nonce}",
                code=WITHDRAWAL_HOLD_CODE,
                debit_account=credit,
                credit_account=transit,
                amount=amount_nano_usd,
                timeout_s=self._accounts_settings.withdrawal_hold_timeout_s,
                metadata={
                    "wallet": wallet,
                    "asset": asset.address.lower(),
                    "amount_atomic": request.amount_atomic,
                    "request_nonce": request.nonce,
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
            request, network=network, amount_nano_usd=amount_nano_usd, hold_id=hold.id
        )
        log.info(
            "withdrawal_held", withdrawal_id=record.id, wallet=wallet, amount_atomic=request.amount_atomic
        )
        return await self._send(record)

    async def _insert(
        self, request: WithdrawalRequest, *, network: str, amount_nano_usd: int, hold_id: int
    ) -> WithdrawalRecord:
        now = int(self._clock_unix_s())
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    account_withdrawals.insert().values(
                        wallet=request.address.lower(),
                        request_nonce=request.nonce,
                        network=network,
                        asset=request.asset.lower(),
                        destination=request.destination.lower(),
                        amount_atomic=request.amount_atomic,
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

    async def _update(self, withdrawal_id: int, **values: object) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                account_withdrawals.update()
                .where(account_withdrawals.c.id == withdrawal_id)
                .values(updated_at_unix_s=int(self._clock_unix_s()), **values)
            )

    async def _send(self, record: WithdrawalRecord) -> WithdrawalRecord:
        assert self._sender is not None
        assert record.status == WithdrawalStatus.HELD
        signed_seen = False

        async def before_send(signed: SignedSettlement) -> None:
            nonlocal signed_seen
            await self._update(
                record.id,
                status=WithdrawalStatus.SENT,
                tx_hash=signed.tx_hash,
                raw_tx="0x" + signed.raw_tx.hex(),
                tx_nonce=signed.tx_nonce,
                from_block=signed.from_block,
            )
            signed_seen = True

        try:
            mined = await self._sender.transfer(
                record.asset, record.destination, record.amount_atomic, before_send=before_send
            )
        except TransactionFailed as error:
            return await self._fail(record, reason=error.reason, detail=str(error))
        except (ChainUnavailable, X402Error) as error:
            if not signed_seen:
                # Nothing was signed, so nothing can ever be mined: releasing the credit is safe.
                return await self._fail(record, reason=error.reason, detail=str(error))
            log.warning("withdrawal_outcome_unknown", withdrawal_id=record.id, reason=error.reason)
            return await self.get(record.id)
        return await self._book(record, mined)

    async def _fail(self, record: WithdrawalRecord, *, reason: str, detail: str) -> WithdrawalRecord:
        await self._accounts.ledger.void(record.hold_id, idempotency_key=f"withdrawal:{record.id}:void")
        await self._update(record.id, status=WithdrawalStatus.FAILED, error_reason=reason[:80])
        log.warning("withdrawal_failed", withdrawal_id=record.id, reason=reason, detail=detail)
        raise UpstreamFailed(
            f"withdrawal {record.id} failed on chain ({reason}); the credit is released",
            code="withdrawal_failed",
        )

    async def _book(self, record: WithdrawalRecord, mined: MinedTransfer) -> WithdrawalRecord:
        # Every ERC-20 transfer emits Transfer; without its log there is nothing to reference.
        assert mined.transfer_log_index is not None, f"no Transfer log in {mined.tx_hash}"
        assert self._sender is not None
        ledger = self._accounts.ledger
        await ledger.capture(
            record.hold_id, record.amount_nano_usd, idempotency_key=f"withdrawal:{record.id}:capture"
        )
        transaction = await ledger.post(
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
        await self._update(
            record.id,
            status=WithdrawalStatus.COMPLETED,
            tx_hash=mined.tx_hash,
            block_number=mined.block_number,
            transfer_log_index=mined.transfer_log_index,
            ledger_transaction_id=transaction.id,
        )
        log.info(
            "withdrawal_completed",
            withdrawal_id=record.id,
            tx_hash=mined.tx_hash,
            amount_atomic=record.amount_atomic,
        )
        return await self.get(record.id)
