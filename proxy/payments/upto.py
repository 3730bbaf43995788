"""x402 `upto` in the proxy: offered beside `exact`, a signed maximum accepted before the inference, the real
cost settled after it, everything booked.

Ledger, in nano-USD (M the signed maximum, C the captured cost, S = C rounded UP to the atomic unit):
  accept   in_transit:<network>:<asset> +M, credit:wallet:<payer> −M   the promise; the hold takes the quote
  capture  the pipeline's capture of C and, in the same database transaction, what was never taken:
           in_transit −(M−S), credit +(M−S); the intent becomes `due` S (or `released` when S = 0)
  settled  cash:<network>:<asset>:<wallet> +S, in_transit −S           the chain moved S
  lost     expense:x402_upto_loss:<network> +S, in_transit −S         served, never collected
  failed   the inference failed: a capture of 0 that also posts in_transit −M, credit +M
The credit keeps S − C (less than one atomic unit), as `exact` keeps its rounding. `in_transit` drains to
zero, and reconciliation reports it when it does not.

One authorization pays for one request: its intent is never reclaimable once claimed. A claim reserves the
maximum against the payer's balance (and allowance), with `exact` payments of the same payer, under the
same per-payer lock, so a payer cannot promise the same funds twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import ExtraTransaction, InTransaction, Posting, chart
from proxy.chart_accounts import ChartAccounts
from proxy.faults import crash_if_enabled
from proxy.money import atomic_to_nano_usd
from proxy.payments.booking import SETTLEMENT_GAS_CODE, book_gas, book_gas_spent, record_signed_settlement
from proxy.payments.intents import SettlementIntent, SettlementIntents, SettlementStatus
from proxy.payments.stored_payment import load_signed_settlement
from proxy.settings import AssetSettings, Settings
from x402.chain import TokenReader
from x402.codec import encode_header
from x402.errors import (
    ChainUnavailable,
    Permit2NonceUsed,
    SettlementPending,
    SettlementSendFailed,
    TransactionFailed,
    X402Error,
)
from x402.models import PaymentRequirements, SettleResponse, to_wire
from x402.requirements import AcceptedAsset, atomic_from_nano_usd
from x402.settle import GasSpent, Settler, SignedSettlement
from x402.upto import (
    Permit2Reader,
    UptoPaymentPayload,
    VerifiedUptoPayment,
    build_upto_requirements,
    decode_upto_payment_header,
    verify_upto_offchain,
    verify_upto_onchain,
)
from x402.upto_settle import UptoSettlement, recover_upto, settle_upto

__all__ = [
    "UPTO_LOSS_CODE",
    "UPTO_PROMISE_CODE",
    "UPTO_RELEASE_CODE",
    "UPTO_SETTLEMENT_CODE",
    "UptoAcceptance",
    "UptoCharge",
    "UptoOutcome",
    "UptoPayments",
    "finish_upto_intent",
    "load_upto_payment",
    "release_unserved_upto",
]

UPTO_PROMISE_CODE = "x402_upto_promise"
UPTO_RELEASE_CODE = "x402_upto_release"
UPTO_SETTLEMENT_CODE = "x402_upto_settlement"
UPTO_LOSS_CODE = "x402_upto_loss"
V2_RESPONSE_HEADER = "PAYMENT-RESPONSE"
log = structlog.get_logger("megarouter.payments.upto")


class _StoredUpto(BaseModel):
    requirements: dict[str, object]
    payload: dict[str, object]


def _dump(payment: VerifiedUptoPayment) -> str:
    return _StoredUpto(
        requirements=to_wire(payment.requirements), payload=to_wire(payment.payload)
    ).model_dump_json()


def load_upto_payment(intent: SettlementIntent) -> VerifiedUptoPayment:
    assert intent.scheme == "upto"
    stored = _StoredUpto.model_validate(json.loads(intent.verified_payment_json))
    document = {"x402Version": 2, "accepted": stored.requirements, "payload": stored.payload}
    payload = UptoPaymentPayload.model_validate(document)
    return VerifiedUptoPayment(requirements=payload.accepted, payload=payload.payload)


def _key(intent: SettlementIntent) -> str:
    return f"x402upto:{intent.network}:{intent.asset}:{intent.payer}:{intent.authorization_nonce}".lower()


def _nano_usd(amount_atomic: int, asset: AssetSettings) -> int:
    return atomic_to_nano_usd(amount_atomic, decimals=asset.decimals)


@dataclass(frozen=True, slots=True)
class UptoOutcome:
    """How a served request's settlement ended: `headers` carry PAYMENT-RESPONSE (amount and transaction)."""

    response: SettleResponse
    pending: bool = False

    @property
    def failed(self) -> bool:
        return not self.response.success and not self.pending

    @property
    def reason(self) -> str:
        return self.response.error_reason or "unexpected_settle_error"

    @property
    def headers(self) -> dict[str, str]:
        return {V2_RESPONSE_HEADER: encode_header(self.response)}


class UptoCharge:
    """One accepted `upto` payment, from the hold to the settlement of the request's real cost."""

    def __init__(
        self,
        *,
        payments: UptoPayments,
        intent: SettlementIntent,
        payment: VerifiedUptoPayment,
        asset: AssetSettings,
    ) -> None:
        self._payments = payments
        self.intent = intent
        self.payment = payment
        self._asset = asset
        self.max_nano_usd = _nano_usd(payment.max_atomic, asset)

    def amount_due_atomic(self, cost_nano_usd: int) -> int:
        assert 0 <= cost_nano_usd <= self.max_nano_usd
        return atomic_from_nano_usd(cost_nano_usd, decimals=self._asset.decimals)

    def _release(self, release_nano_usd: int) -> tuple[Posting, ...]:
        if release_nano_usd == 0:
            return ()
        return (
            Posting(
                account=chart.in_transit(self.intent.network, self.intent.asset), amount=-release_nano_usd
            ),
            Posting(account=chart.credit_wallet(self.intent.payer), amount=release_nano_usd),
        )

    def capture_extra(self, cost_nano_usd: int) -> ExtraTransaction | None:
        """What the payer never gives: the maximum less the amount due, back out of its credit."""
        due_nano_usd = _nano_usd(self.amount_due_atomic(cost_nano_usd), self._asset)
        postings = self._release(self.max_nano_usd - due_nano_usd)
        if not postings:
            return None
        metadata = {"intent_id": self.intent.id, "request_id": self.intent.request_id}
        return ExtraTransaction(code=UPTO_RELEASE_CODE, postings=postings, metadata=metadata)

    def capture_writer(self, cost_nano_usd: int) -> InTransaction:
        """The intent's amount due, written in the capture's own database transaction."""
        amount_atomic = self.amount_due_atomic(cost_nano_usd)
        intents, intent_id = self._payments.intents, self.intent.id

        async def record_due(connection: AsyncConnection) -> None:
            await intents.record_due(connection, intent_id, amount_atomic=amount_atomic)

        return record_due

    async def settle(self, cost_nano_usd: int) -> UptoOutcome:
        """After the capture: settle the amount due (nothing when it is zero) and book it."""
        amount_atomic = self.amount_due_atomic(cost_nano_usd)
        if amount_atomic == 0:
            log.info("upto_settled_nothing", payer=self.payment.payer, intent_id=self.intent.id)
            return UptoOutcome(self._response(success=True, transaction="", amount_atomic=0))
        crash_if_enabled(self._payments.settings.fault_injection, "after_upto_captured")
        intent = await self._payments.intents.get(self.intent.id)
        assert intent is not None
        assert intent.status is SettlementStatus.DUE
        try:
            return await finish_upto_intent(intent, payments=self._payments)
        except (SettlementPending, SettlementSendFailed, ChainUnavailable) as error:
            # The outcome is unknown: the intent stays open and recovery finishes it (exactly once).
            log.warning("upto_settlement_pending", intent_id=intent.id, reason=error.reason)
            response = self._response(
                success=False, transaction=error.tx_hash or "", amount_atomic=amount_atomic
            )
            return UptoOutcome(
                response.model_copy(update={"error_reason": "settlement_pending"}), pending=True
            )

    def _response(self, *, success: bool, transaction: str, amount_atomic: int) -> SettleResponse:
        return SettleResponse(
            success=success,
            transaction=transaction,
            network=self.intent.network,
            payer=self.payment.payer,
            amount=amount_atomic,
        )


@dataclass(frozen=True, slots=True)
class UptoAcceptance:
    payer: str
    credit_account: str
    charge: UptoCharge


class UptoPayments:
    """The proxy's `upto` door: offers, acceptance, settlement after the inference; one per app."""

    def __init__(
        self,
        *,
        settings: Settings,
        settler: Settler,
        token_reader: TokenReader,
        intents: SettlementIntents,
        accounts: ChartAccounts,
        assets: tuple[AcceptedAsset, ...],
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.settler = settler
        self.reader = Permit2Reader(token_reader)
        self.intents = intents
        self.accounts = accounts
        self._assets = assets
        self._clock_unix_s = clock_unix_s
        # The authorization must outlive the longest request (streams included): it is settled at its end.
        self._settle_window_s = int(settings.stream_hold_s_max) + 1
        self.max_timeout_s = settings.hold_timeout_s
        assert self.max_timeout_s > self._settle_window_s
        # Intents this process is settling now: recovery leaves them to their request (as the Settler's own
        # in-flight set does for `exact`), so one authorization is never sent twice from here.
        self.finishing: set[int] = set()

    def asset_settings(self, address: str) -> AssetSettings:
        for asset in self.settings.assets:
            if asset.address.lower() == address.lower():
                return asset
        raise AssertionError(f"an upto payment in an asset we never offered: {address}")

    def requirements(self, quote_nano_usd: int) -> list[PaymentRequirements]:
        return build_upto_requirements(
            quote_nano_usd=quote_nano_usd,
            chain_id=self.settings.chain_id,
            assets=self._assets,
            pay_to=self.settler.address,
            facilitator=self.settler.address,
            max_timeout_s=self.max_timeout_s,
        )

    async def accept(self, header_value: str, *, quote_nano_usd: int, request_id: str) -> UptoAcceptance:
        """Verifies the signed maximum, reserves it, books the promise. Raises X402Error subclasses."""
        payload = decode_upto_payment_header(header_value)
        verified = verify_upto_offchain(
            payload,
            self.requirements(quote_nano_usd),
            int(self._clock_unix_s()),
            facilitator=self.settler.address,
            settle_window_s=self._settle_window_s,
        )
        spendable = await verify_upto_onchain(self.reader, verified)
        intent = await self.intents.claim(
            network=verified.requirements.network,
            asset=verified.asset,
            payer=verified.payer,
            authorization_nonce=verified.nonce_hex,
            value_atomic=verified.max_atomic,
            valid_before_unix_s=verified.deadline_unix_s,
            verified_payment_json=_dump(verified),
            request_id=request_id,
            payer_balance=spendable,
            scheme="upto",
        )
        if intent is None:
            raise Permit2NonceUsed("this authorization was already submitted")
        asset = self.asset_settings(verified.asset)
        charge = UptoCharge(payments=self, intent=intent, payment=verified, asset=asset)
        await self._book_promise(intent, charge.max_nano_usd)
        log.info("upto_accepted", payer=verified.payer, max_atomic=verified.max_atomic, intent_id=intent.id)
        return UptoAcceptance(
            payer=verified.payer.lower(), credit_account=chart.credit_wallet(verified.payer), charge=charge
        )

    async def _book_promise(self, intent: SettlementIntent, max_nano_usd: int) -> None:
        in_transit, credit = chart.in_transit(intent.network, intent.asset), chart.credit_wallet(intent.payer)
        await self.accounts.ensure([in_transit, credit])
        await self.accounts.ledger.post(
            idempotency_key=f"{_key(intent)}:promise",
            code=UPTO_PROMISE_CODE,
            postings=[
                Posting(account=in_transit, amount=max_nano_usd),
                Posting(account=credit, amount=-max_nano_usd),
            ],
            metadata={
                "intent_id": intent.id,
                "request_id": intent.request_id,
                "max_atomic": intent.value_atomic,
            },
        )


async def finish_upto_intent(intent: SettlementIntent, *, payments: UptoPayments) -> UptoOutcome:
    """Settles and books a `due` intent, or finishes a `signed`/`mined` one after a crash, exactly once.

    A settlement that can never land (refused by the re-check before anything was signed, or mined and
    reverted) is booked as a loss and the intent marked lost. SettlementPending, SettlementSendFailed and
    ChainUnavailable propagate: the outcome is unknown and the intent stays open for recovery.
    """
    if intent.id in payments.finishing:
        raise SettlementPending("this upto intent is being settled by its request")
    payments.finishing.add(intent.id)
    try:
        return await _finish(intent, payments=payments)
    finally:
        payments.finishing.discard(intent.id)


async def _finish(intent: SettlementIntent, *, payments: UptoPayments) -> UptoOutcome:
    asset = payments.asset_settings(intent.asset)
    payment = load_upto_payment(intent)
    settler = payments.settler

    async def record_signed(signed: SignedSettlement) -> None:
        await record_signed_settlement(payments.intents, intent.id, signed)
        crash_if_enabled(payments.settings.fault_injection, "after_upto_signed")

    try:
        if intent.status is SettlementStatus.DUE:
            result = await settle_upto(
                settler, payments.reader, payment, intent.value_atomic, before_send=record_signed
            )
        elif intent.status is SettlementStatus.SIGNED:
            result = await recover_upto(
                settler,
                payments.reader,
                payment,
                intent.value_atomic,
                load_signed_settlement(intent),
                before_send=record_signed,
            )
        else:
            assert intent.status is SettlementStatus.MINED
            return await _book_settled(intent, payments=payments, asset=asset, settlement=None)
    except TransactionFailed as error:
        spent = GasSpent.of_revert(error)
        await book_gas_spent(
            payments.accounts,
            network=intent.network,
            wallet=settler.address,
            spent=spent,
            code=SETTLEMENT_GAS_CODE,
        )
        return await _book_lost(intent, payments=payments, asset=asset, error=error, spent=spent)
    except (SettlementPending, SettlementSendFailed, ChainUnavailable):
        raise
    except X402Error as error:
        return await _book_lost(intent, payments=payments, asset=asset, error=error, spent=None)
    return await _book_settled(intent, payments=payments, asset=asset, settlement=result)


async def _book_settled(
    intent: SettlementIntent,
    *,
    payments: UptoPayments,
    asset: AssetSettings,
    settlement: UptoSettlement | None,
) -> UptoOutcome:
    wallet = payments.settler.address
    if settlement is not None:
        # Gas first: until the intent is marked mined, a crash leads recovery back to the same receipt.
        if settlement.sender.lower() == wallet.lower():
            await book_gas(
                payments.accounts,
                network=intent.network,
                wallet=wallet,
                tx_hash=settlement.tx_hash,
                block_number=settlement.block_number,
                gas_used=settlement.gas_used,
                effective_gas_price_wei=settlement.effective_gas_price_wei,
                code=SETTLEMENT_GAS_CODE,
            )
        intent = await payments.intents.record_mined(
            intent.id,
            tx_hash=settlement.tx_hash,
            block_number=settlement.block_number,
            transfer_log_index=settlement.transfer_log_index,
        )
    assert intent.tx_hash is not None
    assert intent.transfer_log_index is not None
    amount_nano_usd = _nano_usd(intent.value_atomic, asset)
    cash = chart.cash(intent.network, asset.address, wallet)
    in_transit = chart.in_transit(intent.network, intent.asset)
    await payments.accounts.ensure([cash, in_transit])
    transaction = await payments.accounts.ledger.post(
        idempotency_key=f"{_key(intent)}:settled",
        code=UPTO_SETTLEMENT_CODE,
        external_ref=f"{intent.network}:{intent.tx_hash}:{intent.transfer_log_index}".lower(),
        postings=[
            Posting(account=cash, amount=amount_nano_usd),
            Posting(account=in_transit, amount=-amount_nano_usd),
        ],
        metadata={
            "payer": intent.payer,
            "asset": intent.asset,
            "value_atomic": intent.value_atomic,
            "max_atomic": intent.max_atomic,
            "tx_hash": intent.tx_hash,
            "request_id": intent.request_id,
        },
    )
    await payments.intents.record_booked(intent.id, ledger_transaction_id=transaction.id)
    log.info("upto_settled", payer=intent.payer, amount_atomic=intent.value_atomic, tx_hash=intent.tx_hash)
    return UptoOutcome(
        SettleResponse(
            success=True,
            transaction=intent.tx_hash,
            network=intent.network,
            payer=load_upto_payment(intent).payer,
            amount=intent.value_atomic,
        )
    )


async def _book_lost(
    intent: SettlementIntent,
    *,
    payments: UptoPayments,
    asset: AssetSettings,
    error: X402Error,
    spent: GasSpent | None,
) -> UptoOutcome:
    """Served and never collected: the amount due moves from in_transit to the operator's loss expense."""
    amount_nano_usd = _nano_usd(intent.value_atomic, asset)
    expense, in_transit = (
        chart.upto_loss_expense(intent.network),
        chart.in_transit(intent.network, intent.asset),
    )
    await payments.accounts.ensure([expense, in_transit])
    await payments.accounts.ledger.post(
        idempotency_key=f"{_key(intent)}:lost",
        code=UPTO_LOSS_CODE,
        postings=[
            Posting(account=expense, amount=amount_nano_usd),
            Posting(account=in_transit, amount=-amount_nano_usd),
        ],
        metadata={
            "payer": intent.payer,
            "value_atomic": intent.value_atomic,
            "reason": error.reason,
            "request_id": intent.request_id,
            "reverted_tx_hash": spent.tx_hash if spent else None,
        },
    )
    await payments.intents.record_lost(
        intent.id,
        reason=error.reason,
        reverted_tx_hash=spent.tx_hash if spent else None,
        block_number=spent.block_number if spent else None,
    )
    log.error(
        "upto_settlement_lost",
        payer=intent.payer,
        amount_atomic=intent.value_atomic,
        reason=error.reason,
        request_id=intent.request_id,
    )
    return UptoOutcome(
        SettleResponse(
            success=False,
            error_reason=error.reason,
            transaction="",
            network=intent.network,
            payer=load_upto_payment(intent).payer,
            amount=0,
        )
    )


async def release_unserved_upto(intent: SettlementIntent, *, payments: UptoPayments) -> None:
    """A claimed `upto` intent whose request can no longer be captured (its hold expired, its process died):
    the promise goes back out of the credit and nothing is ever settled."""
    assert intent.scheme == "upto"
    assert intent.max_atomic is not None
    asset = payments.asset_settings(intent.asset)
    max_nano_usd = _nano_usd(intent.max_atomic, asset)
    in_transit, credit = chart.in_transit(intent.network, intent.asset), chart.credit_wallet(intent.payer)
    await payments.accounts.ledger.post(
        idempotency_key=f"{_key(intent)}:unserved",
        code=UPTO_RELEASE_CODE,
        postings=[
            Posting(account=in_transit, amount=-max_nano_usd),
            Posting(account=credit, amount=max_nano_usd),
        ],
        metadata={"intent_id": intent.id, "request_id": intent.request_id},
    )
    await payments.intents.record_released(intent.id, reason="never_captured")
