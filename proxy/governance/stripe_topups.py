"""Card top-ups of an organization's credit through Stripe Checkout, booked from Stripe's signed webhooks.

A webhook is verified with Stripe's own scheme (`Stripe-Signature: t=<unix s>,v1=<HMAC-SHA256 of
"<t>.<payload>">`, by the `stripe` package) before anything is read from it; a bad or stale signature books
nothing. Each booking is a ledger transaction keyed by the event id (a redelivered event replays, booking
nothing twice) and referenced by what it is about (the payment intent, the refund, the dispute), so two
events about one payment also book once.
- `checkout.session.completed` (paid) and `checkout.session.async_payment_succeeded`: the amount goes from
  `stripe:balance` (asset: money Stripe holds for the operator) to `credit:org:<id>` (the session's
  `metadata.org_id`).
- `refund.created` and `charge.dispute.created`: reversing entries, back from the org's credit to
  `stripe:balance`. Credit already spent cannot be taken back: that part is the operator's loss,
  `expense:stripe_reversal_shortfall`.
- `charge.dispute.closed` with status `won`: the disputed amount is credited again.
Amounts are USD cents (1 cent = 10,000,000 nano-USD); other currencies are refused.
"""

from __future__ import annotations

from typing import Any

import stripe
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger import (
    AccountFlags,
    AccountType,
    DuplicateExternalRef,
    InsufficientFunds,
    Ledger,
    Posting,
    chart,
)
from proxy.errors import InvalidRequest
from proxy.governance.models import org_credit_account
from proxy.governance.store import Organizations

__all__ = ["STRIPE_BALANCE", "StripeBooking", "StripeTopups"]

STRIPE_BALANCE = "stripe:balance"
SHORTFALL_EXPENSE = "expense:stripe_reversal_shortfall"
NANO_USD_PER_CENT = 10_000_000
TOPUP_CODE = "stripe_topup"
REVERSAL_CODE = "stripe_reversal"
log = structlog.get_logger("megarouter.stripe")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _EventData(_Loose):
    object: dict[str, Any]


class StripeEvent(_Loose):
    id: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=100)
    data: _EventData


class _CheckoutSession(_Loose):
    id: str
    payment_status: str
    amount_total: int = Field(ge=0)
    currency: str
    metadata: dict[str, str] = Field(default_factory=dict)
    payment_intent: str | None = None


class _Reversal(_Loose):
    """A refund or a dispute: what it reverses is found by its payment intent."""

    id: str
    amount: int = Field(gt=0)
    currency: str
    payment_intent: str | None = None
    status: str


class StripeBooking(BaseModel):
    """What a webhook did: `booked` is False for events that concern no booking, or were booked before."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    type: str
    booked: bool
    org_id: int | None = None
    amount_nano_usd: int = 0


class StripeTopups:
    def __init__(self, ledger: Ledger, orgs: Organizations, *, webhook_secret: str, tolerance_s: int) -> None:
        assert webhook_secret
        self._ledger = ledger
        self._orgs = orgs
        self._secret = webhook_secret
        self._tolerance_s = tolerance_s

    def verified_event(self, payload: bytes, signature_header: str | None) -> StripeEvent:
        """The event, once its signature checks out; InvalidRequest (nothing booked) otherwise."""
        if not signature_header:
            raise InvalidRequest("Stripe-Signature header is missing", code="invalid_signature")
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature_header, self._secret, self._tolerance_s)
            return StripeEvent.model_validate_json(text)
        except (UnicodeDecodeError, stripe.SignatureVerificationError) as error:
            raise InvalidRequest("Stripe-Signature does not verify", code="invalid_signature") from error
        except ValidationError as error:
            raise InvalidRequest("not a Stripe event", code="invalid_event") from error

    async def book(self, event: StripeEvent) -> StripeBooking:
        """Books the event once: a redelivery (same event id) books and records nothing again."""
        if await self._ledger.transaction_by_idempotency_key(f"stripe:{event.id}") is not None:
            return StripeBooking(event_id=event.id, type=event.type, booked=False)
        try:
            if event.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
                return await self._topup(event, _CheckoutSession.model_validate(event.data.object))
            if event.type in ("refund.created", "charge.dispute.created"):
                return await self._reverse(event, _Reversal.model_validate(event.data.object), sign=-1)
            if event.type == "charge.dispute.closed":
                dispute = _Reversal.model_validate(event.data.object)
                if dispute.status == "won":
                    return await self._reverse(event, dispute, sign=+1)
        except ValidationError as error:
            raise InvalidRequest(f"{event.type}: unexpected object", code="invalid_event") from error
        return StripeBooking(event_id=event.id, type=event.type, booked=False)

    async def _accounts(self, org_id: int) -> str:
        credit = org_credit_account(org_id)
        await self._ledger.ensure_account(STRIPE_BALANCE, type=AccountType.ASSET, unit=chart.UNIT_NANO_USD)
        await self._ledger.ensure_account(
            credit,
            type=AccountType.LIABILITY,
            unit=chart.UNIT_NANO_USD,
            flags=AccountFlags.MUST_NOT_GO_NEGATIVE,
        )
        return credit

    async def _topup(self, event: StripeEvent, session: _CheckoutSession) -> StripeBooking:
        if session.payment_status != "paid":
            return StripeBooking(event_id=event.id, type=event.type, booked=False)
        _check_usd(session.currency)
        raw_org = session.metadata.get("org_id", "")
        if not (raw_org.isascii() and raw_org.isdigit()):
            raise InvalidRequest("checkout session without metadata.org_id", code="invalid_event")
        org = await self._orgs.get_org(int(raw_org))
        amount_nano_usd = session.amount_total * NANO_USD_PER_CENT
        credit = await self._accounts(org.id)
        try:
            transaction = await self._ledger.post(
                idempotency_key=f"stripe:{event.id}",
                code=TOPUP_CODE,
                postings=[
                    Posting(account=STRIPE_BALANCE, amount=amount_nano_usd),
                    Posting(account=credit, amount=-amount_nano_usd),
                ],
                external_ref=f"stripe:payment:{session.payment_intent or session.id}",
                metadata={"org_id": org.id, "event_id": event.id, "checkout_session": session.id},
            )
        except DuplicateExternalRef:
            return StripeBooking(event_id=event.id, type=event.type, booked=False, org_id=org.id)
        assert transaction.code == TOPUP_CODE
        await self._orgs.record(
            org.id, actor="stripe", action="credits.topup", target_kind="org", target_id=org.id, after=None
        )
        log.info("stripe_topup_booked", org_id=org.id, amount_nano_usd=amount_nano_usd, event_id=event.id)
        return StripeBooking(
            event_id=event.id, type=event.type, booked=True, org_id=org.id, amount_nano_usd=amount_nano_usd
        )

    async def _reverse(self, event: StripeEvent, reversal: _Reversal, *, sign: int) -> StripeBooking:
        """sign -1: take the amount back from the org's credit (refund, dispute); +1: give it back (won)."""
        _check_usd(reversal.currency)
        if reversal.payment_intent is None:
            return StripeBooking(event_id=event.id, type=event.type, booked=False)
        deposit = await self._ledger.transaction_by_external_ref(f"stripe:payment:{reversal.payment_intent}")
        if deposit is None:
            return StripeBooking(event_id=event.id, type=event.type, booked=False)  # Not a top-up of ours.
        org_id = int(str(deposit.metadata["org_id"]))
        credit = await self._accounts(org_id)
        amount_nano_usd = reversal.amount * NANO_USD_PER_CENT
        kind = "dispute_won" if sign > 0 else event.type.split(".")[-2]
        postings = [
            Posting(account=STRIPE_BALANCE, amount=sign * amount_nano_usd),
            Posting(account=credit, amount=-sign * amount_nano_usd),
        ]
        for attempt in range(2):
            try:
                await self._ledger.post(
                    idempotency_key=f"stripe:{event.id}",
                    code=REVERSAL_CODE,
                    postings=postings,
                    external_ref=f"stripe:{kind}:{reversal.id}",
                    metadata={
                        "org_id": org_id,
                        "event_id": event.id,
                        "payment_intent": reversal.payment_intent,
                    },
                )
                break
            except DuplicateExternalRef:
                return StripeBooking(event_id=event.id, type=event.type, booked=False, org_id=org_id)
            except InsufficientFunds:
                if attempt == 1:
                    raise  # Stripe retries the webhook.
                postings = await self._split_shortfall(credit, amount_nano_usd)
        log.warning("stripe_reversal_booked", org_id=org_id, amount_nano_usd=amount_nano_usd, kind=kind)
        return StripeBooking(
            event_id=event.id,
            type=event.type,
            booked=True,
            org_id=org_id,
            amount_nano_usd=sign * amount_nano_usd,
        )

    async def _split_shortfall(self, credit: str, amount_nano_usd: int) -> list[Posting]:
        """The org's credit gives what it has; the rest is the operator's loss."""
        available = max(0, (await self._ledger.balance(credit)).available)
        await self._ledger.ensure_account(
            SHORTFALL_EXPENSE, type=AccountType.EXPENSE, unit=chart.UNIT_NANO_USD
        )
        taken = min(available, amount_nano_usd)
        postings = [Posting(account=STRIPE_BALANCE, amount=-amount_nano_usd)]
        if taken:
            postings.append(Posting(account=credit, amount=taken))
        if amount_nano_usd > taken:
            postings.append(Posting(account=SHORTFALL_EXPENSE, amount=amount_nano_usd - taken))
        return postings


def _check_usd(currency: str) -> None:
    if currency.lower() != "usd":
        raise InvalidRequest(f"only USD top-ups are booked, not {currency}", code="unsupported_currency")
