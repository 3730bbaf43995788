"""API errors of prepaid accounts, each with a stable code (rendered by the error middleware).

ApiError (proxy.errors)
├── InvalidRequest 400
│   ├── SignedMessageInvalid    message_malformed | domain_mismatch | uri_mismatch | chain_id_mismatch |
│   │                           version_unsupported   (EIP-4361 terms that are not this server's)
│   ├── ChallengeInvalid        challenge_not_found | challenge_expired | challenge_not_yet_valid |
│   │                           challenge_used | challenge_mismatch
│   ├── SignatureMismatch       signature_mismatch   (signature does not recover the claimed address)
│   ├── WithdrawalInvalid       withdrawal_expired | withdrawal_not_yet_valid | withdrawal_window_invalid |
│   │                           withdrawal_message_mismatch |
│   │                           unsupported_asset | invalid_destination | ...
│   └── InsufficientCredit      insufficient_credit  (a withdrawal larger than the available credit)
├── AuthenticationFailed 401    invalid_api_key | api_key_revoked
├── Conflict 409                withdrawal_nonce_used
├── RateLimited 429 (proxy.errors)  too_many_challenges   (with Retry-After)
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
    "SignedMessageInvalid",
    "WithdrawalInvalid",
]


class SignedMessageInvalid(InvalidRequest):
    default_code = "signed_message_invalid"


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
