"""Refusals of the organization layer, as OpenAI-style API errors (rendered by the error middleware).

ApiError
├── BudgetExceeded     429 insufficient_quota / budget_exceeded: a hard budget on the request's path is spent
├── OrgCreditExhausted 429 insufficient_quota / insufficient_org_credit: the org's credit cannot pay the quote
└── OrgConflict        409 invalid_request_error: the change contradicts the org's state (unit not empty…)
"""

from __future__ import annotations

from proxy.errors import ApiError

__all__ = ["BudgetExceeded", "OrgConflict", "OrgCreditExhausted"]


class BudgetExceeded(ApiError):
    """OpenAI's convention for exhausted quota: HTTP 429 with type `insufficient_quota`."""

    status = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class OrgCreditExhausted(ApiError):
    status = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_org_credit"


class OrgConflict(ApiError):
    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"
