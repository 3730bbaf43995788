"""Payment failures as the API renders them: x402 documents, not OpenAI errors.

A payment that is missing or refused is a 402 carrying the offer again (PAYMENT-REQUIRED header and the same
JSON as body) with the reason code in `error`; a payment header that cannot be decoded is a 400.
When the chain cannot be reached the payment can be neither verified nor settled: that is no reason to pay
again, so it is an OpenAI-style 503 `chain_unavailable` with Retry-After instead of a 402.
"""

from __future__ import annotations

from typing import Any, ClassVar

from proxy.errors import ApiError

__all__ = ["CHAIN_RETRY_AFTER_S", "PaymentChainUnavailable", "PaymentMalformed", "PaymentRequired"]

# Long enough for a node restart or a network blip to pass, short enough that an agent's retry is prompt.
CHAIN_RETRY_AFTER_S = 5


class PaymentRequired(ApiError):
    status: ClassVar[int] = 402
    error_type: ClassVar[str] = "payment_required"
    default_code: ClassVar[str] = "payment_required"

    def __init__(self, document: dict[str, Any], *, reason: str, header_value: str) -> None:
        super().__init__(reason, code=reason, headers={"PAYMENT-REQUIRED": header_value})
        self.document = document

    def body(self) -> dict[str, Any]:
        return self.document


class PaymentMalformed(PaymentRequired):
    status = 400


class PaymentChainUnavailable(ApiError):
    status = 503
    error_type = "api_error"
    default_code = "chain_unavailable"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        assert retry_after_s > 0
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
