"""Who pays for a request, and the hold on their credit: an API key's wallet credit, or an x402 payment.

With a key, the quote is held on the key's wallet credit; when the credit falls short, the answer is a 402
offering x402 payment of the shortfall, never an overdraft. Without a key, the request must carry an
x402 payment of the quote (or receives the 402 offer); the payment lands on the payer wallet's credit
and the hold is taken from there.
"""

from __future__ import annotations

from aiohttp import web

from ledger import InsufficientFunds
from proxy.accounts.principal import KeyPrincipal
from proxy.errors import ApiError
from proxy.governance.models import Budget
from proxy.payments.gate import PaymentGate
from proxy.serving.billing import Billing, BillingSession

__all__ = ["PAYMENT_KEPT_AS_CREDIT", "open_paid_session", "with_payment_outcome"]

PAYMENT_KEPT_AS_CREDIT = (
    "Your x402 payment settled and is kept as credit on the paying wallet (usable with that wallet's API "
    "keys, or withdrawable); see the PAYMENT-RESPONSE header."
)


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
    tokens_max: int = 0,
) -> tuple[BillingSession, dict[str, str]]:
    """The open billing session and the headers to answer with (x402 settlement headers where x402 paid).

    `tokens_max`: the request's token bound (prompt + output), what an org key's tokens-per-minute limits
    reserve."""
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
        )
        return session, {}
    key_payer = principal
    if key_payer is not None:
        credit_account, key_id, headers = key_payer.credit_account, key_payer.key_id, {}
        if gate.carries_payment(request):
            # The retry after a shortfall 402: the payment tops up the paying wallet's credit first.
            available = (
                (await billing.ledger.balance(credit_account)).available
                if await billing.has_account(credit_account)
                else 0
            )
            shortfall = max(hold_nano_usd - available, 1)
            payment = await gate.accept(request, quote_nano_usd=shortfall, request_id=request_id)
            headers = dict(payment.response_headers)
    else:
        payment = await gate.accept(request, quote_nano_usd=hold_nano_usd, request_id=request_id)
        credit_account, key_id, headers = payment.credit_account, None, dict(payment.response_headers)
    try:
        session = await billing.open(
            request_id=request_id,
            payer_account=credit_account,
            api_key_id=key_id,
            amount_nano_usd=hold_nano_usd,
            first_provider=first_provider,
            strategy=strategy,
            streamed=streamed,
        )
    except InsufficientFunds as error:
        available = (await billing.ledger.balance(credit_account)).available
        shortfall = max(hold_nano_usd - available, 1)
        refusal = gate.payment_required(request, shortfall, reason="insufficient_credit")
        refusal.headers.update(headers)
        raise refusal from error
    return session, headers


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
        )
    except BaseException as error:
        await admission.settle(0)  # Not served: its token bound goes back to the window.
        if not isinstance(error, InsufficientFunds):
            raise
        raise org_budgets.refusal(
            error, principal=org, budgets=budgets, quote_nano_usd=hold_nano_usd
        ) from error
