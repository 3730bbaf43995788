"""Typed x402 failures, each carrying the stable reason code that goes on the wire.

    X402Error (reason: unexpected_verify_error)
    ├── InvalidPayload                  invalid_payload            (malformed header/JSON; HTTP 400)
    ├── InvalidX402Version              invalid_x402_version
    ├── UnsupportedScheme               unsupported_scheme
    ├── InvalidNetwork                  invalid_network
    ├── InvalidPaymentRequirements      invalid_payment_requirements (asset or `accepted` not offered)
    ├── RecipientMismatch               invalid_exact_evm_payload_recipient_mismatch
    ├── ValueMismatch                   invalid_exact_evm_payload_authorization_value_mismatch
    ├── AuthorizationNotYetValid        invalid_exact_evm_payload_authorization_valid_after
    ├── AuthorizationExpired            invalid_exact_evm_payload_authorization_valid_before
    │   └── AuthorizationTooLong        (validBefore beyond maxTimeoutSeconds from now)
    ├── InvalidSignature                invalid_exact_evm_payload_signature
    ├── TokenNameMismatch               invalid_exact_evm_token_name_mismatch
    ├── TokenVersionMismatch            invalid_exact_evm_token_version_mismatch
    ├── NetworkMismatch                 network_mismatch           (RPC chain id differs from the network)
    ├── AssetNotDeployed                asset_not_deployed_contract
    ├── NonceAlreadyUsed                invalid_exact_evm_nonce_already_used
    ├── InsufficientFunds               insufficient_funds
    ├── ChainUnavailable                unexpected_verify_error    (RPC failed or timed out)
    ├── UptoError                       (the `upto` scheme's own checks, Permit2 reason codes of the SDK)
    │   ├── Permit2SpenderMismatch      invalid_permit2_spender   (spender is not the upto proxy)
    │   ├── Permit2RecipientMismatch    invalid_permit2_recipient_mismatch (witness.to is not payTo)
    │   ├── UptoFacilitatorMismatch     upto_facilitator_mismatch (witness.facilitator is not our settler)
    │   ├── Permit2DeadlineExpired      permit2_deadline_expired  (deadline too near, or too far, to settle)
    │   ├── Permit2NotYetValid          permit2_not_yet_valid     (witness.validAfter in the future)
    │   ├── Permit2AmountMismatch       permit2_amount_mismatch   (signed maximum is not the offered one)
    │   ├── Permit2TokenMismatch        permit2_token_mismatch
    │   ├── Permit2InvalidSignature     invalid_permit2_signature
    │   ├── Permit2NonceUsed            permit2_invalid_nonce     (the Permit2 nonce is spent or invalidated)
    │   ├── Permit2AllowanceRequired    permit2_allowance_required (payer's allowance to Permit2 too low)
    │   ├── Permit2InsufficientBalance  permit2_insufficient_balance
    │   └── UptoSettlementExceedsAmount invalid_upto_evm_payload_settlement_exceeds_amount
    └── SettlementError                 unexpected_settle_error
        ├── SettlementSendFailed        unexpected_settle_error    (send failed; outcome unknown → recover)
        ├── SettlementPending           settlement_pending         (no receipt within the bound)
        ├── TransactionFailed           transaction_failed         (mined and reverted)
        └── InvalidTransactionState     invalid_transaction_state  (authorization canceled, cannot settle)

Verification failures map to HTTP 402 except InvalidPayload (400); mapping to HTTP is the proxy's job.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AssetNotDeployed",
    "AuthorizationExpired",
    "AuthorizationNotYetValid",
    "AuthorizationTooLong",
    "ChainUnavailable",
    "InsufficientFunds",
    "InvalidNetwork",
    "InvalidPayload",
    "InvalidPaymentRequirements",
    "InvalidSignature",
    "InvalidTransactionState",
    "InvalidX402Version",
    "NetworkMismatch",
    "NonceAlreadyUsed",
    "Permit2AllowanceRequired",
    "Permit2AmountMismatch",
    "Permit2DeadlineExpired",
    "Permit2InsufficientBalance",
    "Permit2InvalidSignature",
    "Permit2NonceUsed",
    "Permit2NotYetValid",
    "Permit2RecipientMismatch",
    "Permit2SpenderMismatch",
    "Permit2TokenMismatch",
    "RecipientMismatch",
    "SettlementError",
    "SettlementPending",
    "SettlementSendFailed",
    "TokenNameMismatch",
    "TokenVersionMismatch",
    "TransactionFailed",
    "UnsupportedScheme",
    "UptoError",
    "UptoFacilitatorMismatch",
    "UptoSettlementExceedsAmount",
    "ValueMismatch",
    "X402Error",
]


class X402Error(Exception):
    """Root of every expected x402 failure; `reason` is the spec's reason code (stable, on the wire)."""

    reason: ClassVar[str] = "unexpected_verify_error"

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Set on settlement errors once a transaction exists, so callers can store and recover it.
        self.tx_hash = tx_hash


class InvalidPayload(X402Error):
    reason = "invalid_payload"


class InvalidX402Version(X402Error):
    reason = "invalid_x402_version"


class UnsupportedScheme(X402Error):
    reason = "unsupported_scheme"


class InvalidNetwork(X402Error):
    reason = "invalid_network"


class InvalidPaymentRequirements(X402Error):
    reason = "invalid_payment_requirements"


class RecipientMismatch(X402Error):
    reason = "invalid_exact_evm_payload_recipient_mismatch"


class ValueMismatch(X402Error):
    reason = "invalid_exact_evm_payload_authorization_value_mismatch"


class AuthorizationNotYetValid(X402Error):
    reason = "invalid_exact_evm_payload_authorization_valid_after"


class AuthorizationExpired(X402Error):
    reason = "invalid_exact_evm_payload_authorization_valid_before"


class AuthorizationTooLong(AuthorizationExpired):
    """validBefore lies further ahead than the offer's maxTimeoutSeconds allows: the spec has no code of its
    own for it, so it carries the valid_before reason code."""


class InvalidSignature(X402Error):
    reason = "invalid_exact_evm_payload_signature"


class TokenNameMismatch(X402Error):
    reason = "invalid_exact_evm_token_name_mismatch"


class TokenVersionMismatch(X402Error):
    reason = "invalid_exact_evm_token_version_mismatch"


class NetworkMismatch(X402Error):
    reason = "network_mismatch"


class AssetNotDeployed(X402Error):
    reason = "asset_not_deployed_contract"


class NonceAlreadyUsed(X402Error):
    reason = "invalid_exact_evm_nonce_already_used"


class InsufficientFunds(X402Error):
    reason = "insufficient_funds"


class ChainUnavailable(X402Error):
    reason = "unexpected_verify_error"


class UptoError(X402Error):
    """A failed check of the `upto` scheme (Permit2 witness transfer); codes as the official SDK has them."""

    reason = "invalid_payload"


class Permit2SpenderMismatch(UptoError):
    reason = "invalid_permit2_spender"


class Permit2RecipientMismatch(UptoError):
    reason = "invalid_permit2_recipient_mismatch"


class UptoFacilitatorMismatch(UptoError):
    reason = "upto_facilitator_mismatch"


class Permit2DeadlineExpired(UptoError):
    reason = "permit2_deadline_expired"


class Permit2NotYetValid(UptoError):
    reason = "permit2_not_yet_valid"


class Permit2AmountMismatch(UptoError):
    reason = "permit2_amount_mismatch"


class Permit2TokenMismatch(UptoError):
    reason = "permit2_token_mismatch"


class Permit2InvalidSignature(UptoError):
    reason = "invalid_permit2_signature"


class Permit2NonceUsed(UptoError):
    reason = "permit2_invalid_nonce"


class Permit2AllowanceRequired(UptoError):
    reason = "permit2_allowance_required"


class Permit2InsufficientBalance(UptoError):
    reason = "permit2_insufficient_balance"


class UptoSettlementExceedsAmount(UptoError):
    reason = "invalid_upto_evm_payload_settlement_exceeds_amount"


class SettlementError(X402Error):
    reason = "unexpected_settle_error"


class SettlementSendFailed(SettlementError):
    reason = "unexpected_settle_error"


class SettlementPending(SettlementError):
    reason = "settlement_pending"


class TransactionFailed(SettlementError):
    """Mined and reverted: nothing moved, but the gas was paid, so the receipt's gas facts travel along."""

    reason = "transaction_failed"

    def __init__(
        self,
        message: str,
        *,
        tx_hash: str,
        block_number: int,
        gas_used: int,
        effective_gas_price_wei: int,
    ) -> None:
        super().__init__(message, tx_hash=tx_hash)
        assert block_number >= 0
        assert gas_used >= 0
        self.block_number = block_number
        self.gas_used = gas_used
        self.effective_gas_price_wei = effective_gas_price_wei


class InvalidTransactionState(SettlementError):
    reason = "invalid_transaction_state"
