"""A request's money from hold to resolution. Every way out resolves the hold exactly once: captured at the
real cost (into the payable of the provider that served, whichever failover chose), or voided.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import (
    AccountNotFound,
    CaptureLeg,
    ExtraTransaction,
    Hold,
    HoldGroup,
    HoldLeg,
    HoldState,
    InTransaction,
    Ledger,
    Posting,
    chart,
)
from proxy.catalog import CatalogModel
from proxy.catalog.pricing import charge_for_usage
from proxy.chart_accounts import ChartAccounts
from proxy.governance.enforcement import OrgBudgets
from proxy.governance.models import Budget, OrgPrincipal
from proxy.governance.rate_limits import Admission
from proxy.payments.upto import UptoCharge, UptoOutcome
from proxy.providers.base import TokenUsage
from proxy.request_ids import is_server_request_id
from proxy.serving.observers import UsageObserver, notify
from proxy.serving.usage_log import Attempt, UsageEvent, UsageLog

__all__ = ["HOLD_CODE", "USAGE_OVERAGE_CODE", "Billing", "BillingSession"]

HOLD_CODE = "inference_hold"
USAGE_OVERAGE_CODE = "usage_overage"
log = structlog.get_logger("megarouter.billing")


class BillingSession:
    def __init__(
        self,
        *,
        billing: Billing,
        hold: Hold,
        request_id: str,
        payer_account: str,
        api_key_id: int | None,
        strategy: str | None,
        streamed: bool,
        route_explanation: dict[str, Any] | None = None,
        upto: UptoCharge | None = None,
        group: HoldGroup | None = None,
        org: OrgPrincipal | None = None,
        budgets: Sequence[Budget] = (),
        admission: Admission | None = None,
    ) -> None:
        assert upto is None or group is None, "an upto payment pays for a keyless request, never an org key's"
        self._billing = billing
        self._route_explanation = route_explanation
        # An org key's rate-limit admission: settled with the tokens used once the hold is resolved.
        self._admission = admission
        self.hold = hold
        # An org key's request: `hold` (the payer's) is the last of the group, after one per budget.
        self._group = group
        self._org = org
        self._budgets = tuple(budgets)
        assert group is None or (group.holds[-1] == hold and len(group.holds) == len(self._budgets) + 1)
        self._request_id = request_id
        self._payer_account = payer_account
        self._api_key_id = api_key_id
        self._strategy = strategy
        self._streamed = streamed
        self._started_s = time.monotonic()
        self._resolved = False
        # An x402 `upto` payment settles the captured cost after the capture; its outcome lands here.
        self._upto = upto
        self.upto_outcome: UptoOutcome | None = None

    @property
    def quote_nano_usd(self) -> int:
        return self.hold.amount

    @property
    def held_s(self) -> float:
        """How long the hold has been taken: what is left of its timeout bounds the rest of the request."""
        return time.monotonic() - self._started_s

    def _elapsed_ms(self) -> int:
        return int(self.held_s * 1000)

    async def charge(
        self,
        model: CatalogModel,
        usage: TokenUsage,
        *,
        attempts: Sequence[Attempt],
        outcome: str,
        time_to_first_token_ms: int | None = None,
    ) -> int:
        """Captures the real cost of `usage` at `model`'s prices (never more than held); returns it.

        A provider reporting more than the quote allowed is still owed the real cost: the caller pays the
        quote (what it agreed to), and the rest is booked as the operator's `expense:usage_overage:*`.
        """
        assert not self._resolved, "a request's hold is resolved once"
        self._resolved = True
        real_cost_nano_usd = charge_for_usage(model.id, model, usage).cost_nano_usd
        cost_nano_usd = min(real_cost_nano_usd, self.quote_nano_usd)
        overage_nano_usd = real_cost_nano_usd - cost_nano_usd
        payable = chart.provider_payable(model.provider)
        overage_expense = chart.usage_overage_expense(model.provider)
        await self._billing.accounts.ensure([payable, overage_expense] if overage_nano_usd else [payable])
        overage = None
        if overage_nano_usd > 0:
            log.error(
                "charge_exceeds_quote",
                charge_nano_usd=real_cost_nano_usd,
                quote_nano_usd=self.quote_nano_usd,
                overage_nano_usd=overage_nano_usd,
                provider=model.provider,
            )
            overage = ExtraTransaction(
                code=USAGE_OVERAGE_CODE,
                postings=(
                    Posting(account=overage_expense, amount=overage_nano_usd),
                    Posting(account=payable, amount=-overage_nano_usd),
                ),
                metadata={"request_id": self._request_id, "hold_id": self.hold.id},
            )
        event = self._event(
            model,
            usage,
            attempts=attempts,
            outcome=outcome,
            cost_nano_usd=cost_nano_usd,
            overage_nano_usd=overage_nano_usd,
            time_to_first_token_ms=time_to_first_token_ms,
        )
        # One database transaction: the capture, the overage expense and the usage event that explains
        # them commit together or not at all; a replay of the key (a retry after a crash) does none again.
        also = self._billing.usage_event_writer(event)
        if self._upto is not None:
            overage = _merged(overage, self._upto.capture_extra(cost_nano_usd))
            also = _both(also, self._upto.capture_writer(cost_nano_usd))
        if self._group is None:
            await self._billing.ledger.capture(
                self.hold.id,
                cost_nano_usd,
                idempotency_key=f"{self._request_id}:capture",
                credit_account=payable,
                extra=overage,
                also=also,
            )
        else:
            # Each budget on the path is charged what the payer is; the rest of every hold is released.
            await self._billing.ledger.capture_group(
                self._group.id,
                [
                    *(CaptureLeg(amount=cost_nano_usd) for _ in self._budgets),
                    CaptureLeg(amount=cost_nano_usd, credit_account=payable),
                ],
                idempotency_key=f"{self._request_id}:capture",
                extra=overage,
                also=also,
            )
        notify(self._billing.observers, event)
        if self._upto is not None:
            self.upto_outcome = await self._upto.settle(cost_nano_usd)
        if self._admission is not None:
            await self._admission.settle(usage.input_tokens + usage.output_tokens)
        if self._budgets and self._billing.org_budgets is not None:
            await self._billing.org_budgets.after_capture(self._budgets)
        log.info(
            "inference_charged",
            model=model.id,
            provider=model.provider,
            cost_nano_usd=cost_nano_usd,
            quote_nano_usd=self.quote_nano_usd,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            usage_estimated=usage.estimated,
            outcome=outcome,
        )
        return cost_nano_usd

    async def release(self, *, attempts: Sequence[Attempt], outcome: str) -> None:
        """Voids the hold: nothing reached the caller, so nothing is charged."""
        assert not self._resolved, "a request's hold is resolved once"
        self._resolved = True
        event = self._event(
            None, None, attempts=attempts, outcome=outcome, cost_nano_usd=0, time_to_first_token_ms=None
        )
        if self._group is not None:
            await self._billing.ledger.void_group(
                self._group.id,
                idempotency_key=f"{self._request_id}:void",
                also=self._billing.usage_event_writer(event),
            )
        elif self._upto is None:
            await self._billing.ledger.void(
                self.hold.id,
                idempotency_key=f"{self._request_id}:void",
                also=self._billing.usage_event_writer(event),
            )
        else:
            # An upto payment gives back its whole maximum in the same database transaction that ends the
            # hold (a capture of nothing, which, unlike a void, can carry that posting).
            await self._billing.ledger.capture(
                self.hold.id,
                0,
                idempotency_key=f"{self._request_id}:void",
                extra=self._upto.capture_extra(0),
                also=_both(self._billing.usage_event_writer(event), self._upto.capture_writer(0)),
            )
        notify(self._billing.observers, event)
        if self._admission is not None:
            await self._admission.settle(0)

    def _event(
        self,
        model: CatalogModel | None,
        usage: TokenUsage | None,
        *,
        attempts: Sequence[Attempt],
        outcome: str,
        cost_nano_usd: int,
        time_to_first_token_ms: int | None,
        overage_nano_usd: int = 0,
    ) -> UsageEvent:
        prices = (
            {}
            if model is None
            else {
                "input": model.input_price_nano_usd_per_mtok,
                "cached_input": model.cached_input_price_nano_usd_per_mtok,
                "cache_write_input": model.cache_write_input_price_nano_usd_per_mtok,
                "output": model.output_price_nano_usd_per_mtok,
            }
        )
        usage = usage or TokenUsage(input_tokens=0, output_tokens=0)
        return UsageEvent(
            request_id=self._request_id,
            payer_account=self._payer_account,
            api_key_id=self._api_key_id,
            outcome=outcome,
            model_id=model.id if model else None,
            provider=model.provider if model else None,
            strategy=self._strategy,
            attempts=tuple(attempts),
            streamed=self._streamed,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_input_tokens=usage.cache_write_input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            usage_estimated=usage.estimated,
            prices_nano_usd_per_mtok=prices,
            catalog_version=self._billing.catalog_version,
            quote_nano_usd=self.quote_nano_usd,
            cost_nano_usd=cost_nano_usd,
            overage_nano_usd=overage_nano_usd,
            hold_id=self.hold.id,
            latency_ms=self._elapsed_ms(),
            time_to_first_token_ms=time_to_first_token_ms,
            route_explanation=self._route_explanation,
            org_id=self._org.org_id if self._org else None,
            org_unit_id=self._org.unit_id if self._org else None,
            org_member_id=self._org.member_id if self._org else None,
            org_key_id=self._org.key_id if self._org else None,
        )


def _merged(first: ExtraTransaction | None, second: ExtraTransaction | None) -> ExtraTransaction | None:
    """One extra transaction of both sets of balanced postings (a capture carries at most one)."""
    if first is None or second is None:
        return first or second
    return ExtraTransaction(
        code=first.code,
        postings=first.postings + second.postings,
        metadata={**second.metadata, **first.metadata, "also_code": second.code},
    )


def _both(first: InTransaction, second: InTransaction) -> InTransaction:
    async def run_both(connection: AsyncConnection) -> None:
        await first(connection)
        await second(connection)

    return run_both


class Billing:
    """Opens billing sessions: one hold per request on the payer's credit account."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        accounts: ChartAccounts,
        usage_log: UsageLog,
        catalog_version: str,
        hold_timeout_s: int,
        instance_id: Callable[[], str],
        observers: Sequence[UsageObserver] = (),
        org_budgets: OrgBudgets | None = None,
    ) -> None:
        self.ledger = ledger
        # Budgets of org keys (proxy/governance); None: no org key can be served.
        self.org_budgets = org_budgets
        self.accounts = accounts
        self.usage_log = usage_log
        self.catalog_version = catalog_version
        self._hold_timeout_s = hold_timeout_s
        # The serving instance now (proxy/serving/instances.py): its holds are released if it dies.
        self._instance_id = instance_id
        # Called with each usage event once it has committed (metrics, span attributes).
        self.observers = tuple(observers)

    def usage_event_writer(self, event: UsageEvent) -> InTransaction:
        """Inserts `event` inside the ledger transaction that captures or voids the hold it explains."""

        async def insert_usage_event(connection: AsyncConnection) -> None:
            await self.usage_log.insert(connection, event)

        return insert_usage_event

    async def has_account(self, name: str) -> bool:
        try:
            await self.ledger.account(name)
        except AccountNotFound:
            return False
        return True

    async def open(
        self,
        *,
        request_id: str,
        payer_account: str,
        api_key_id: int | None,
        amount_nano_usd: int,
        first_provider: str,
        strategy: str | None,
        streamed: bool,
        route_explanation: dict[str, Any] | None = None,
        upto: UptoCharge | None = None,
        org: OrgPrincipal | None = None,
        budgets: Sequence[Budget] = (),
        budget_legs: Sequence[HoldLeg] = (),
        admission: Admission | None = None,
    ) -> BillingSession:
        """Holds `amount_nano_usd`; raises ledger InsufficientFunds when the credit cannot cover it.

        With `budget_legs` (an org key's request: one per budget of `budgets`, same order), the payer's
        hold and the budgets' are one hold group, taken in one database transaction: all or none, so a
        refusal (InsufficientFunds naming the first refusing account, budgets before the payer) holds nothing.
        """
        assert amount_nano_usd > 0
        # The id keys the hold, capture and void: a caller-chosen one would replay an earlier request's hold.
        assert is_server_request_id(request_id)
        instance_id = self._instance_id()
        assert instance_id
        payable = chart.provider_payable(first_provider)
        await self.accounts.ensure([payer_account, payable])
        if budget_legs or org is not None:
            return await self._open_group(
                request_id=request_id,
                payer_account=payer_account,
                payable=payable,
                amount_nano_usd=amount_nano_usd,
                instance_id=instance_id,
                api_key_id=api_key_id,
                strategy=strategy,
                streamed=streamed,
                org=org,
                budgets=budgets,
                budget_legs=budget_legs,
                admission=admission,
                route_explanation=route_explanation,
            )
        hold = await self.ledger.hold(
            idempotency_key=f"{request_id}:hold",
            code=HOLD_CODE,
            debit_account=payer_account,
            credit_account=payable,
            amount=amount_nano_usd,
            timeout_s=self._hold_timeout_s,
            metadata={"request_id": request_id, "instance_id": instance_id},
        )
        assert hold.state is HoldState.PENDING, "a fresh request id takes a fresh hold, never a replayed one"
        return BillingSession(
            billing=self,
            hold=hold,
            request_id=request_id,
            payer_account=payer_account,
            api_key_id=api_key_id,
            strategy=strategy,
            streamed=streamed,
            route_explanation=route_explanation,
            upto=upto,
        )

    async def _open_group(
        self,
        *,
        request_id: str,
        payer_account: str,
        payable: str,
        amount_nano_usd: int,
        instance_id: str,
        api_key_id: int | None,
        strategy: str | None,
        streamed: bool,
        org: OrgPrincipal | None,
        budgets: Sequence[Budget],
        budget_legs: Sequence[HoldLeg],
        admission: Admission | None,
        route_explanation: dict[str, Any] | None,
    ) -> BillingSession:
        assert len(budgets) == len(budget_legs)
        assert all(leg.amount == amount_nano_usd for leg in budget_legs)
        group = await self.ledger.hold_group(
            idempotency_key=f"{request_id}:hold",
            code=HOLD_CODE,
            holds=[
                *budget_legs,
                HoldLeg(debit_account=payer_account, credit_account=payable, amount=amount_nano_usd),
            ],
            timeout_s=self._hold_timeout_s,
            metadata={"request_id": request_id, "instance_id": instance_id},
        )
        assert group.state is HoldState.PENDING, "a fresh request id takes a fresh hold, never a replayed one"
        return BillingSession(
            billing=self,
            hold=group.holds[-1],
            request_id=request_id,
            payer_account=payer_account,
            api_key_id=api_key_id,
            strategy=strategy,
            streamed=streamed,
            group=group,
            org=org,
            budgets=budgets,
            admission=admission,
            route_explanation=route_explanation,
        )
