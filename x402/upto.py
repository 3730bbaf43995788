"""The `upto` scheme on EVM (x402 v2, Permit2): offer, decode and verify a signed maximum.

The payer signs a Permit2 `PermitWitnessTransferFrom` for at most `amount` (the request's quote), spendable
only by the upto proxy, paid only to `payTo`, and settled only by the facilitator named in the witness (our
settlement key, announced as `extra.facilitatorAddress`). The server then settles any amount up to that
maximum once it knows the real cost (x402/upto_settle.py). `verify_upto_offchain` is pure (the clock is
passed in); `verify_upto_onchain` reads the chain: Permit2 and the proxy deployed, nonce unused, allowance
to Permit2 and balance both covering the maximum. Neither checks our database: the caller must also claim
the authorization uniquely and reserve its maximum against the payer's other payments in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from pydantic import Field, ValidationError

from x402.chain import TokenReader
from x402.codec import decode_header_json
from x402.errors import (
    AssetNotDeployed,
    InvalidNetwork,
    InvalidPayload,
    InvalidPaymentRequirements,
    InvalidSignature,
    InvalidX402Version,
    NetworkMismatch,
    Permit2AllowanceRequired,
    Permit2AmountMismatch,
    Permit2DeadlineExpired,
    Permit2InsufficientBalance,
    Permit2InvalidSignature,
    Permit2NonceUsed,
    Permit2NotYetValid,
    Permit2RecipientMismatch,
    Permit2SpenderMismatch,
    Permit2TokenMismatch,
    UnsupportedScheme,
    UptoFacilitatorMismatch,
)
from x402.models import PaymentRequirements, ResourceInfo, _Wire
from x402.networks import caip2_from_chain_id, chain_id_from_caip2
from x402.permit2 import PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS, UptoEvmPayload, recover_upto_signer
from x402.requirements import AcceptedAsset, atomic_from_nano_usd
from x402.verify import CLOCK_SKEW_S_MAX, SETTLE_MARGIN_S_DEFAULT, PayerBalance

__all__ = [
    "UPTO_SCHEME",
    "Permit2Reader",
    "UptoPaymentPayload",
    "VerifiedUptoPayment",
    "build_upto_requirements",
    "decode_upto_payment_header",
    "is_upto_payment_header",
    "verify_upto_offchain",
    "verify_upto_onchain",
]

UPTO_SCHEME = "upto"
_SELECTOR_ALLOWANCE = keccak(text="allowance(address,address)")[:4]
_SELECTOR_NONCE_BITMAP = keccak(text="nonceBitmap(address,uint256)")[:4]


class UptoPaymentPayload(_Wire):
    """v2 PAYMENT-SIGNATURE content of an `upto` payment."""

    x402_version: int
    resource: ResourceInfo | None = None
    accepted: PaymentRequirements
    payload: UptoEvmPayload
    extensions: dict[str, Any] | None = Field(default=None)


def build_upto_requirements(
    *,
    quote_nano_usd: int,
    chain_id: int,
    assets: Sequence[AcceptedAsset],
    pay_to: str,
    facilitator: str,
    max_timeout_s: int,
) -> list[PaymentRequirements]:
    """One `upto` entry per asset: `amount` is the maximum (the quote, rounded up to the atomic unit)."""
    assert quote_nano_usd > 0
    assert assets, "at least one accepted asset"
    assert max_timeout_s > 0
    network = caip2_from_chain_id(chain_id)
    return [
        PaymentRequirements(
            scheme=UPTO_SCHEME,
            network=network,
            amount=atomic_from_nano_usd(quote_nano_usd, decimals=asset.decimals),
            asset=asset.address,
            pay_to=pay_to,
            max_timeout_seconds=max_timeout_s,
            extra={
                "name": asset.name,
                "version": asset.version,
                "assetTransferMethod": "permit2",
                "facilitatorAddress": facilitator,
            },
        )
        for asset in assets
    ]


def is_upto_payment_header(header_value: str) -> bool:
    """Whether a v2 PAYMENT-SIGNATURE names `upto` (a malformed one does not: the exact path refuses it)."""
    try:
        document = decode_header_json(header_value)
    except InvalidPayload:
        return False
    accepted = document.get("accepted")
    return isinstance(accepted, dict) and accepted.get("scheme") == UPTO_SCHEME


def decode_upto_payment_header(header_value: str) -> UptoPaymentPayload:
    document = decode_header_json(header_value)
    if document.get("x402Version") != 2:
        raise InvalidX402Version("the upto scheme is x402 v2 only")
    try:
        return UptoPaymentPayload.model_validate(document)
    except ValidationError as error:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]]
        raise InvalidPayload("invalid upto payment payload: " + "; ".join(parts)) from error


@dataclass(frozen=True, slots=True)
class VerifiedUptoPayment:
    """An `upto` payment that passed the off-chain checks, bound to the offered requirement it pays."""

    requirements: PaymentRequirements
    payload: UptoEvmPayload

    @property
    def payer(self) -> str:
        return self.payload.permit2_authorization.from_

    @property
    def chain_id(self) -> int:
        return chain_id_from_caip2(self.requirements.network)

    @property
    def asset(self) -> str:
        return self.requirements.asset

    @property
    def max_atomic(self) -> int:
        return self.payload.permit2_authorization.permitted.amount

    @property
    def nonce(self) -> int:
        return self.payload.permit2_authorization.nonce

    @property
    def nonce_hex(self) -> str:
        """The Permit2 nonce as 32-byte hex: the key our database claims it under."""
        return "0x" + self.nonce.to_bytes(32, "big").hex()

    @property
    def deadline_unix_s(self) -> int:
        return self.payload.permit2_authorization.deadline


def verify_upto_offchain(
    payment: UptoPaymentPayload,
    offered_requirements: Sequence[PaymentRequirements],
    now_unix_s: int,
    *,
    facilitator: str,
    settle_window_s: int,
    settle_margin_s: int = SETTLE_MARGIN_S_DEFAULT,
) -> VerifiedUptoPayment:
    """Scheme, network, asset, spender, payee, facilitator, time window, maximum, token and signature.

    `settle_window_s` is how long after verification the settlement may still be sent (the longest a
    request may run): a deadline that could pass before then is refused, as one too far beyond the offer.
    """
    assert now_unix_s > 0
    assert settle_window_s >= 0
    if payment.x402_version != 2:
        raise InvalidX402Version("the upto scheme is x402 v2 only")
    accepted = payment.accepted
    if accepted.scheme != UPTO_SCHEME:
        raise UnsupportedScheme(f"scheme {accepted.scheme[:32]!r} is not upto")
    same_network = [
        r for r in offered_requirements if r.scheme == UPTO_SCHEME and r.network == accepted.network
    ]
    if not same_network:
        raise InvalidNetwork(f"network {accepted.network[:32]!r} is not offered for upto")
    offered = next((r for r in same_network if r.asset == accepted.asset), None)
    if offered is None:
        raise InvalidPaymentRequirements("asset is not offered")
    authorization = payment.payload.permit2_authorization
    if authorization.spender != UPTO_PROXY_ADDRESS:
        raise Permit2SpenderMismatch("spender must be the x402 upto Permit2 proxy")
    if authorization.witness.to != offered.pay_to:
        raise Permit2RecipientMismatch("witness.to pays someone other than payTo")
    if authorization.witness.facilitator != facilitator:
        raise UptoFacilitatorMismatch("witness.facilitator is not this server's settlement address")
    if authorization.witness.valid_after > now_unix_s:
        raise Permit2NotYetValid("witness.validAfter lies in the future")
    if authorization.deadline <= now_unix_s + settle_window_s + settle_margin_s - CLOCK_SKEW_S_MAX:
        raise Permit2DeadlineExpired("deadline could pass before the request's cost is settled")
    if authorization.deadline > now_unix_s + offered.max_timeout_seconds + CLOCK_SKEW_S_MAX:
        raise Permit2DeadlineExpired(
            f"deadline may be at most maxTimeoutSeconds ({offered.max_timeout_seconds} s) ahead"
        )
    if authorization.permitted.amount != offered.amount or accepted.amount != offered.amount:
        raise Permit2AmountMismatch(f"the signed maximum must equal the offered {offered.amount}")
    if authorization.permitted.token != offered.asset:
        raise Permit2TokenMismatch("permitted.token is not the offered asset")
    if accepted.pay_to != offered.pay_to:
        raise InvalidPaymentRequirements("accepted payTo differs from the offer")
    try:
        signer = recover_upto_signer(
            chain_id_from_caip2(offered.network), authorization, payment.payload.signature
        )
    except InvalidSignature as error:
        raise Permit2InvalidSignature(error.message) from error
    if signer != authorization.from_:
        raise Permit2InvalidSignature("signature was not made by `from`")
    return VerifiedUptoPayment(requirements=offered, payload=payment.payload)


class Permit2Reader:
    """Reads what an `upto` payment depends on: Permit2's nonce bitmap, the payer's allowance to Permit2."""

    def __init__(self, tokens: TokenReader) -> None:
        self.tokens = tokens

    async def _call(self, to: str, data: bytes) -> bytes:
        return await self.tokens.call_contract(to, data)

    async def nonce_used(self, owner: str, nonce: int) -> bool:
        word_position, bit = nonce >> 8, 1 << (nonce & 0xFF)
        raw = await self._call(
            PERMIT2_ADDRESS,
            _SELECTOR_NONCE_BITMAP + abi_encode(["address", "uint256"], [owner, word_position]),
        )
        bitmap: int = abi_decode(["uint256"], raw)[0]
        return bitmap & bit != 0

    async def allowance_atomic(self, asset: str, owner: str) -> int:
        raw = await self._call(
            asset, _SELECTOR_ALLOWANCE + abi_encode(["address", "address"], [owner, PERMIT2_ADDRESS])
        )
        allowance_atomic: int = abi_decode(["uint256"], raw)[0]
        return allowance_atomic

    async def require_spendable(self, payment: VerifiedUptoPayment, amount_atomic: int) -> PayerBalance:
        """Nonce unused, allowance and balance ≥ `amount_atomic`; returns min(balance, allowance), block."""
        block_number = await self.tokens.block_number()
        used, allowance_atomic, balance_atomic = await asyncio.gather(
            self.nonce_used(payment.payer, payment.nonce),
            self.allowance_atomic(payment.asset, payment.payer),
            self.tokens.balance_atomic(payment.asset, payment.payer, block_number=block_number),
        )
        if used:
            raise Permit2NonceUsed("the Permit2 nonce is already used or invalidated")
        if allowance_atomic < amount_atomic:
            raise Permit2AllowanceRequired("the payer's allowance to Permit2 does not cover the amount")
        if balance_atomic < amount_atomic:
            raise Permit2InsufficientBalance("payer balance is below the amount")
        return PayerBalance(balance_atomic=min(balance_atomic, allowance_atomic), block_number=block_number)


async def verify_upto_onchain(reader: Permit2Reader, payment: VerifiedUptoPayment) -> PayerBalance:
    """Chain id, token, Permit2 and proxy deployed; nonce unused; allowance and balance ≥ the maximum.

    Returns the spendable amount it checked (the lower of balance and allowance), so the caller can weigh
    the payer's other settlements in flight against it.
    """
    tokens = reader.tokens
    if await tokens.chain_id() != payment.chain_id:
        raise NetworkMismatch(f"RPC chain is not {payment.requirements.network}")
    deployed = await asyncio.gather(
        tokens.has_code(payment.asset), tokens.has_code(PERMIT2_ADDRESS), tokens.has_code(UPTO_PROXY_ADDRESS)
    )
    if not all(deployed):
        raise AssetNotDeployed("asset, Permit2 or the upto proxy has no contract code")
    return await reader.require_spendable(payment, payment.max_atomic)
