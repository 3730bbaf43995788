"""Who pays for a request, and the hold on their credit: an API key's wallet credit, a wallet signed in with
x402's `sign-in-with-x`, or an x402 payment.

With a key, the quote is held on the key's wallet credit; when the credit falls short, the answer is a 402
in OpenAI's error shape (what the openai SDK shows its user) with the x402 offer of the shortfall in the
PAYMENT-REQUIRED header, never an overdraft. A signed-in wallet follows the same rule with the x402
document as body (its client is an x402 client): served from its credit when the credit covers the quote,
otherwise offered only the shortfall, which it may pay on the same request. Without either, the request
must carry an x402 payment of the quote (or receives the 402 offer); the payment lands on the payer
wallet's credit and the hold is taken from there.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from ledger import InsufficientFunds, chart
from proxy.accounts.credits import nano_usd_to_usd_string
from proxy.accounts.principal import KeyPrincipal
from proxy.accounts.sign_in_with_x import WalletSignIns
from proxy.errors import ApiError, CreditShort
from proxy.governance.models import Budget
from proxy.money import div_ceil
from proxy.payments.gate import PaymentGate
from proxy.serving.billing import Billing, BillingSession
from x402.errors import InvalidPayload
from x402.siwx import SiwxInvalid

__all__ = [
    "PAYMENT_KEPT_AS_CREDIT",
    "credit_short_message",
    "open_paid_session",
    "sign_in_wallet",
    "with_payment_outcome",
]

log = structlog.get_logger("megarouter.payer")

PAYMENT_KEPT_AS_CREDIT = (
    "Your x402 payment settled and is kept as credit on the paying wallet (usable with that wallet's API "
    "keys, or withdrawable); see the PAYMENT-RESPONSE header."
)
_MICRO_USD_NANO_USD = 1_000


def with_payment_outcome(error: ApiError, payment_headers: dict[str, str]) -> ApiError:
    """`error`, carrying the settlement headers and saying where the money went, when x402 paid.

    Every error raised after a payment settled must go through here: an agent that sees a failure without
    PAYMENT-RESPONSE would believe nothing was paid, and pay again.
    """
    if payment_headers:
        error.headers.update(payment_headers)
        if PAYMENT_KEPT_AS_CREDIT not in error.message:
            error.message = f"{error.message} {PAYMENT_KEPT_AS_CREDIT}"
    return error


def _usd_6(amount_nano_usd: int, *, round_up: bool) -> str:
    """USD to the micro-dollar (a stablecoin's unit), rounded so that the message never flatters."""
    micro_usd = div_ceil(amount_nano_usd, _MICRO_USD_NANO_USD) if round_up else amount_nano_usd // 1_000
    return f"{micro_usd // 1_000_000}.{micro_usd % 1_000_000:06d}"


def credit_short_message(*, available_nano_usd: int, quote_nano_usd: int) -> str:
    """What a person reading the openai SDK's exception needs: how short, and how to top up."""
    assert 0 <= available_nano_usd < quote_nano_usd
    shortfall_nano_usd = quote_nano_usd - available_nano_usd
    return (
        f"credit {_usd_6(available_nano_usd, round_up=False)} USD is short of this request's "
        f"{_usd_6(quote_nano_usd, round_up=True)} USD quote; top up at least "
        f"{nano_usd_to_usd_string(shortfall_nano_usd)} USD: pay the x402 offer in the PAYMENT-REQUIRED "
        "header (or POST /v1/credits/topup), or lower max_tokens"
    )


async def sign_in_wallet(
    request: web.Request,
    *,
    sign_ins: WalletSignIns,
    gate: PaymentGate,
    header_value: str,
    hold_nano_usd: int,
) -> str:
    """The wallet a `SIGN-IN-WITH-X` proof signs in, or the 402 (400 when undecodable) saying why not: a
    refused proof moves no money, even when the request also carries a payment."""
    try:
        wallet = await sign_ins.sign_in(header_value)
    except InvalidPayload as error:
        log.info("sign_in_malformed", detail=str(error))
        raise gate.payment_required(request, hold_nano_usd, reason=error.reason, malformed=True) from error
    except SiwxInvalid as error:
        log.info("sign_in_refused", reason=error.reason, detail=str(error))
        raise gate.payment_required(request, hold_nano_usd, reason=error.reason) from error
    structlog.contextvars.bind_contextvars(signed_in_wallet=wallet)
    return wallet


async def _available(billing: Billing, credit_account: str) -> int:
    if not await billing.has_account(credit_account):
        return 0
    return (await billing.ledger.balance(credit_account)).available


async def open_paid_session(
    request: web.Request,
    *,
    gate: PaymentGate,
    billing: Billing,
    principal: KeyPrincipal | None,
    hold_nano_usd: int,
    first_provider: str,
    strategy: str | None,
    streamed: bool,
    request_id: str,
    signed_in_wallet: str | None = None,
    route_explanation: dict[str, Any] | None = None,
    tokens_max: int = 0,
) -> tuple[BillingSession, dict[str, str]]:
    """The open billing session and the headers to answer with (x402 settlement headers where x402 paid).

    `signed_in_wallet`: the wallet that proved itself with `sign-in-with-x` on this request (no key).
    `tokens_max`: the request's token bound (prompt + output), what an org key's tokens-per-minute limits
    reserve."""
    assert principal is None or signed_in_wallet is None
    if principal is not None and principal.org is not None:
        session = await _open_org_session(
            billing,
            principal=principal,
            hold_nano_usd=hold_nano_usd,
            tokens_max=tokens_max,
            first_provider=first_provider,
            strategy=strategy,
            streamed=streamed,
            request_id=request_id,
            route_explanation=route_explanation,
        )
        return session, {}
    headers: dict[str, str] = {}
    upto = None
    key_id: int | None = None
    if principal is not None or signed_in_wallet is not None:
        wallet = principal.wallet if principal is not None else signed_in_wallet
        assert wallet is not None
        credit_account = principal.credit_account if principal is not None else chart.credit_wallet(wallet)
        key_id = principal.key_id if principal is not None else None
        if gate.carries_payment(request):
            # The retry after a shortfall 402: the payment tops up the paying wallet's credit first.
            shortfall = max(hold_nano_usd - await _available(billing, credit_account), 1)
            payment = await gate.accept(
                request,
                quote_nano_usd=shortfall,
                request_id=request_id,
                # A signed-in wallet's shortfall must come from that wallet: another payer's money would
                # land on another credit account and leave this one short.
                payer_required=signed_in_wallet,
            )
            headers = dict(payment.response_headers)
        elif signed_in_wallet is not None:
            # Checked before the hold so that a wallet with no credit at all gets no account made for it.
            available = await _available(billing, credit_account)
            if available < hold_nano_usd:
                raise _shortfall_refusal(
                    request,
                    gate,
                    principal=None,
                    available=available,
                    hold_nano_usd=hold_nano_usd,
                    headers={},
                )
    else:
        # Without a key, the request may pay with `upto` too: its real cost is settled after the inference.
        payment = await gate.accept(request, quote_nano_usd=hold_nano_usd, request_id=request_id, upto=True)
        credit_account, key_id, headers = payment.credit_account, None, dict(payment.response_headers)
        upto = payment.upto
    try:
        session = await billing.open(
            request_id=request_id,
            payer_account=credit_account,
            api_key_id=key_id,
            amount_nano_usd=hold_nano_usd,
            first_provider=first_provider,
            strategy=strategy,
            streamed=streamed,
            route_explanation=route_explanation,
            upto=upto,
        )
    except InsufficientFunds as error:
        available = (await billing.ledger.balance(credit_account)).available
        raise _shortfall_refusal(
            request,
            gate,
            principal=principal,
            available=available,
            hold_nano_usd=hold_nano_usd,
            headers=headers,
        ) from error
    return session, headers


def _shortfall_refusal(
    request: web.Request,
    gate: PaymentGate,
    *,
    principal: KeyPrincipal | None,
    available: int,
    hold_nano_usd: int,
    headers: dict[str, str],
) -> ApiError:
    """The 402 offering only what the credit lacks: OpenAI-shaped for a key (its client may know nothing of
    x402; the offer is in the header), the x402 document for everyone else."""
    # A top-up landing between the failed hold and this read must not make the shortfall zero.
    available = max(0, min(available, hold_nano_usd - 1))
    shortfall = hold_nano_usd - available
    offer = gate.payment_required(request, shortfall, reason="insufficient_credit")
    offer.headers.update(headers)
    if principal is None:
        return offer
    message = credit_short_message(available_nano_usd=available, quote_nano_usd=hold_nano_usd)
    return with_payment_outcome(CreditShort(message, headers=dict(offer.headers)), headers)


async def _open_org_session(
    billing: Billing,
    *,
    principal: KeyPrincipal,
    hold_nano_usd: int,
    tokens_max: int,
    first_provider: str,
    strategy: str | None,
    streamed: bool,
    request_id: str,
    route_explanation: dict[str, Any] | None,
) -> BillingSession:
    """An org key's request: the org's credit pays, and every budget on the key's path holds the quote too,
    all in one hold group. A refusal (429 rate_limit_exceeded or insufficient_quota) holds nothing and
    nothing goes upstream. No x402 here: a payment would land on the paying wallet's credit, not the org's."""
    org = principal.org
    assert org is not None
    org_budgets = billing.org_budgets
    assert org_budgets is not None, "org keys authenticate only where organizations are set up"
    admission = await org_budgets.admit(org, tokens=tokens_max)
    budgets: list[Budget] = []
    try:
        budgets = await org_budgets.budgets_on_path(org)
        legs = await org_budgets.hold_legs(budgets, hold_nano_usd)
        return await billing.open(
            request_id=request_id,
            payer_account=org.credit_account,
            api_key_id=None,
            amount_nano_usd=hold_nano_usd,
            first_provider=first_provider,
            strategy=strategy,
            streamed=streamed,
            org=org,
            budgets=budgets,
            budget_legs=legs,
            admission=admission,
            route_explanation=route_explanation,
        )
    except BaseException as error:
        await admission.settle(0)  # Not served: its token bound goes back to the window.
        if not isinstance(error, InsufficientFunds):
            raise
        raise org_budgets.refusal(
            error, principal=org, budgets=budgets, quote_nano_usd=hold_nano_usd
        ) from error
