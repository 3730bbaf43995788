"""Payment failures as the API renders them: x402 documents, not OpenAI errors.

A payment that is missing or refused is a 402 carrying the offer again (PAYMENT-REQUIRED header and the same
JSON as body) with the reason code in `error`; a payment header that cannot be decoded is a 400.
"""

from __future__ import annotations

from typing import Any, ClassVar

from proxy.errors import ApiError

__all__ = ["PaymentMalformed", "PaymentRequired"]


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
