"""Stores a verified payment and its signed settlement in the intent row, and reads them back for recovery."""

from __future__ import annotations

import json

from pydantic import BaseModel

from proxy.payments.intents import SettlementIntent
from x402.eip3009 import Eip712Domain
from x402.models import ExactEvmAuthorization, PaymentRequirements, to_wire
from x402.settle import SignedSettlement
from x402.verify import VerifiedPayment

__all__ = ["dump_verified_payment", "load_signed_settlement", "load_verified_payment"]


class _StoredDomain(BaseModel):
    name: str
    version: str
    chain_id: int
    verifying_contract: str


class _StoredPayment(BaseModel):
    x402_version: int
    requirements: dict[str, object]
    authorization: dict[str, object]
    signature: str
    domain: _StoredDomain


def dump_verified_payment(payment: VerifiedPayment) -> str:
    stored = _StoredPayment(
        x402_version=payment.x402_version,
        requirements=to_wire(payment.requirements),
        authorization=to_wire(payment.authorization),
        signature=payment.signature,
        domain=_StoredDomain(name=payment.domain.name, version=payment.domain.version,
                             chain_id=payment.domain.chain_id,
                             verifying_contract=payment.domain.verifying_contract),
    )
    return stored.model_dump_json()


def load_verified_payment(intent: SettlementIntent) -> VerifiedPayment:
    stored = _StoredPayment.model_validate(json.loads(intent.verified_payment_json))
    return VerifiedPayment(
        x402_version=stored.x402_version,
        requirements=PaymentRequirements.model_validate(stored.requirements),
        authorization=ExactEvmAuthorization.model_validate(stored.authorization),
        signature=stored.signature,
        domain=Eip712Domain(**stored.domain.model_dump()),
    )


def load_signed_settlement(intent: SettlementIntent) -> SignedSettlement:
    assert intent.raw_tx is not None
    assert intent.tx_hash is not None
    assert intent.tx_nonce is not None
    assert intent.from_block is not None
    return SignedSettlement(raw_tx=bytes.fromhex(intent.raw_tx.removeprefix("0x")), tx_hash=intent.tx_hash,
                            tx_nonce=intent.tx_nonce, from_block=intent.from_block)
