"""API errors of prepaid accounts, each with a stable code; rendered by proxy.middlewares.error_middleware.

ApiError (proxy.errors)
├── InvalidRequest 400
│   ├── ChallengeInvalid        challenge_not_found | challenge_expired | challenge_used | challenge_mismatch
│   ├── SignatureMismatch       signature_mismatch   (signature does not recover the claimed address)
│   ├── WithdrawalInvalid       withdrawal_expired | unsupported_asset | invalid_destination | ...
│   └── InsufficientCredit      insufficient_credit  (a withdrawal larger than the available credit)
├── AuthenticationFailed 401    invalid_api_key | api_key_revoked
├── Conflict 409                withdrawal_nonce_used
└── ServiceUnavailable 503      withdrawals_unavailable
"""

from __future__ import annotations

from proxy.errors import ApiError, InvalidRequest

__all__ = [
    "ChallengeInvalid",
    "Conflict",
    "InsufficientCredit",
    "ServiceUnavailable",
    "SignatureMismatch",
    "WithdrawalInvalid",
]


class ChallengeInvalid(InvalidRequest):
    default_code = "challenge_invalid"


class SignatureMismatch(InvalidRequest):
    default_code = "signature_mismatch"


class WithdrawalInvalid(InvalidRequest):
    default_code = "withdrawal_invalid"


class InsufficientCredit(InvalidRequest):
    default_code = "insufficient_credit"


class Conflict(ApiError):
    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class ServiceUnavailable(ApiError):
    status = 503
    default_code = "service_unavailable"
