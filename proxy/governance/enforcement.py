"""What the serving pipeline asks of organizations for a request made with an org key: admission by the rate
limits on its path, the budget holds to take with the payer's, the refusal to answer when one does not fit,
and threshold checks after a capture."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy.exc import SQLAlchemyError

from ledger import HoldLeg, InsufficientFunds
from proxy.errors import ApiError
from proxy.governance.budgets import BudgetLedger
from proxy.governance.errors import BudgetExceeded, OrgCreditExhausted
from proxy.governance.models import Budget, OrgPrincipal, usd_text
from proxy.governance.rate_limits import Admission, RateLimiter
from proxy.governance.store import Organizations

__all__ = ["OrgBudgets"]

log = structlog.get_logger("megarouter.org_budgets")


class OrgBudgets:
    def __init__(self, orgs: Organizations, budget_ledger: BudgetLedger, limiter: RateLimiter) -> None:
        self.orgs = orgs
        self.budget_ledger = budget_ledger
        self.limiter = limiter

    async def admit(self, principal: OrgPrincipal, *, tokens: int) -> Admission:
        """Rate limits on the key's path: admitted (its token bound reserved), or RateLimited."""
        return await self.limiter.admit(
            principal, await self.orgs.rate_limits_on_path(principal), tokens=tokens
        )

    async def budgets_on_path(self, principal: OrgPrincipal) -> list[Budget]:
        """Every budget on the key's path, most specific first."""
        return await self.orgs.budgets_on_path(principal)

    async def hold_legs(self, budgets: Sequence[Budget], amount_nano_usd: int) -> list[HoldLeg]:
        """One hold leg per budget; InsufficientFunds when a hard budget's committed allowance is already
        short (refused without taking a lock)."""
        return await self.budget_ledger.hold_legs(budgets, amount_nano_usd)

    @staticmethod
    def refusal(
        error: InsufficientFunds, *, principal: OrgPrincipal, budgets: Sequence[Budget], quote_nano_usd: int
    ) -> ApiError:
        """The 429 for a hold group that did not fit: naming the budget and its scope, or the org's credit."""
        budget_id = BudgetLedger.budget_of_account(error.account)
        quote_usd = usd_text(quote_nano_usd)
        if budget_id is None:
            assert error.account == principal.credit_account, error.account
            return OrgCreditExhausted(
                f"The credit of organization {principal.org_id} cannot cover this request's quote of "
                f"{quote_usd} USD; top it up (POST /v1/orgs/{principal.org_id}/credits/topup).",
            )
        budget = next(b for b in budgets if b.id == budget_id)
        period = "in total" if budget.period.value == "total" else f"per {budget.period.value}"
        return BudgetExceeded(
            f"Budget {budget.id} on {budget.scope_kind.value} {budget.scope_id} "
            f"({usd_text(budget.amount_nano_usd)} USD {period}, {budget.mode.value}) is exhausted: "
            f"this request's quote of {quote_usd} USD does not fit.",
        )

    async def after_capture(self, budgets: Sequence[Budget]) -> None:
        """Threshold checks once the spend has committed. The charge stands whatever happens here: a check
        that fails is logged and done again by the next request (crossings are level-triggered)."""
        try:
            await self.budget_ledger.check_thresholds(budgets)
        except SQLAlchemyError as error:
            log.error("budget_threshold_check_failed", error=str(error))
