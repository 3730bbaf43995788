"""The x402 payment protocol: message models, header codec, EIP-3009 signing, verification and settlement.

No HTTP server and no database here; this package must not import `proxy` or `ledger`.
The names below are the public API; submodules hold the details (and their own `__all__`).
"""

from x402.chain import TokenReader
from x402.client import sign_payment, sign_payment_v1
from x402.codec import decode_payment_header, decode_payment_required_header, encode_header
from x402.errors import X402Error
from x402.models import (
    ExactEvmAuthorization,
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
    SettleResponse,
    VerifyResponse,
    to_wire,
)
from x402.requirements import AcceptedAsset, atomic_from_nano_usd, build_requirements, to_v1_requirements
from x402.settle import RecoveredSettlement, SettlementResult, Settler, SignedSettlement
from x402.verify import VerifiedPayment, verify_payment_offchain, verify_payment_onchain

__all__ = [
    "AcceptedAsset",
    "ExactEvmAuthorization",
    "PaymentPayload",
    "PaymentPayloadV1",
    "PaymentRequired",
    "PaymentRequiredV1",
    "PaymentRequirements",
    "PaymentRequirementsV1",
    "RecoveredSettlement",
    "ResourceInfo",
    "SettleResponse",
    "SettlementResult",
    "Settler",
    "SignedSettlement",
    "TokenReader",
    "VerifiedPayment",
    "VerifyResponse",
    "X402Error",
    "atomic_from_nano_usd",
    "build_requirements",
    "decode_payment_header",
    "decode_payment_required_header",
    "encode_header",
    "sign_payment",
    "sign_payment_v1",
    "to_v1_requirements",
    "to_wire",
    "verify_payment_offchain",
    "verify_payment_onchain",
]
