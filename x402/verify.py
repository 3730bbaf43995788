"""Payment verification as guard clauses, each failure raising an X402Error with a stable reason code.

`verify_payment_offchain` is pure (the clock is passed in) and returns a VerifiedPayment bound to the
offered requirement it matched. `verify_payment_onchain` then asks the chain through a TokenReader:
chain id, token code, token name/version, authorization unused, balance sufficient. Neither checks our
own database: the caller must also claim `(chain id, asset, from, nonce)` uniquely before settling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from x402.chain import TokenReader
from x402.client import domain_for_requirements
from x402.eip3009 import Eip712Domain, recover_authorizer
from x402.errors import (
    AssetNotDeployed,
    AuthorizationExpired,
    AuthorizationNotYetValid,
    AuthorizationTooLong,
    InsufficientFunds,
    InvalidNetwork,
    InvalidPaymentRequirements,
    InvalidSignature,
    InvalidX402Version,
    NetworkMismatch,
    NonceAlreadyUsed,
    RecipientMismatch,
    TokenNameMismatch,
    TokenVersionMismatch,
    UnsupportedScheme,
    ValueMismatch,
    X402Error,
)
from x402.models import ExactEvmAuthorization, PaymentPayload, PaymentPayloadV1, PaymentRequirements
from x402.networks import chain_id_from_caip2, chain_id_from_v1_name

__all__ = [
    "CLOCK_SKEW_S_MAX",
    "SETTLE_MARGIN_S_DEFAULT",
    "SUPPORTED_X402_VERSIONS",
    "PayerBalance",
    "VerifiedPayment",
    "verify_payment_offchain",
    "verify_payment_onchain",
]

SUPPORTED_X402_VERSIONS = (1, 2)
# An authorization must stay valid long enough to be mined: the SDK also refuses < 6 s of validity left.
SETTLE_MARGIN_S_DEFAULT = 6
# The client computes validBefore as its own now + maxTimeoutSeconds: tolerate a clock this far ahead.
CLOCK_SKEW_S_MAX = 30


@dataclass(frozen=True, slots=True)
class VerifiedPayment:
    """A payment that passed the off-chain checks, bound to the offered requirement it pays."""

    x402_version: int
    requirements: PaymentRequirements
    authorization: ExactEvmAuthorization
    signature: str
    domain: Eip712Domain

    @property
    def payer(self) -> str:
        return self.authorization.from_

    @property
    def chain_id(self) -> int:
        return self.domain.chain_id

    @property
    def asset(self) -> str:
        return self.requirements.asset

    @property
    def amount_atomic(self) -> int:
        return self.authorization.value


@dataclass(frozen=True, slots=True)
class PayerBalance:
    """The payer's token balance as the chain had it at the end of `block_number`.

    The block matters to the caller that reserves in-flight settlements: a settlement mined after this block
    still has to come out of this balance, one mined at or before it already has.
    """

    balance_atomic: int
    block_number: int


def verify_payment_offchain(
    payload: PaymentPayload | PaymentPayloadV1,
    offered_requirements: Sequence[PaymentRequirements],
    now_unix_s: int,
    *,
    settle_margin_s: int = SETTLE_MARGIN_S_DEFAULT,
) -> VerifiedPayment:
    """Checks version, scheme, network, asset, payee, amount, time window, domain and signature."""
    assert offered_requirements, "offer at least one requirement"
    assert now_unix_s > 0
    if payload.x402_version not in SUPPORTED_X402_VERSIONS:
        raise InvalidX402Version(f"x402Version {payload.x402_version} is not supported")
    candidates = _candidates(payload, offered_requirements)
    errors: list[X402Error] = []
    for requirements in candidates:
        try:
            return _verify_against(payload, requirements, now_unix_s, settle_margin_s)
        except X402Error as error:
            errors.append(error)
    # v1 names no asset, so several offers can match; the first offer's failure is the most telling.
    raise errors[0]


def _candidates(
    payload: PaymentPayload | PaymentPayloadV1, offered: Sequence[PaymentRequirements]
) -> list[PaymentRequirements]:
    if isinstance(payload, PaymentPayload):
        scheme, network = payload.accepted.scheme, payload.accepted.network
        chain_id = chain_id_from_caip2(network)
    else:
        scheme, network = payload.scheme, payload.network
        chain_id = chain_id_from_v1_name(network)
    same_scheme = [r for r in offered if r.scheme == scheme]
    if not same_scheme:
        raise UnsupportedScheme(f"scheme {scheme[:32]!r} is not offered")
    same_network = [r for r in same_scheme if chain_id_from_caip2(r.network) == chain_id]
    if not same_network:
        raise InvalidNetwork(f"network {network[:32]!r} is not offered")
    if isinstance(payload, PaymentPayloadV1):
        return same_network
    same_asset = [r for r in same_network if r.asset == payload.accepted.asset]
    if not same_asset:
        raise InvalidPaymentRequirements("asset is not offered")
    return same_asset


def _verify_against(
    payload: PaymentPayload | PaymentPayloadV1,
    requirements: PaymentRequirements,
    now_unix_s: int,
    settle_margin_s: int,
) -> VerifiedPayment:
    authorization = payload.payload.authorization
    if authorization.to != requirements.pay_to:
        raise RecipientMismatch("authorization pays someone other than payTo")
    if authorization.value != requirements.amount:
        raise ValueMismatch(f"authorization value must equal {requirements.amount}")
    # The token requires validAfter < block.timestamp < validBefore.
    if authorization.valid_after >= now_unix_s:
        raise AuthorizationNotYetValid("authorization is not yet valid")
    if authorization.valid_before <= now_unix_s + settle_margin_s:
        raise AuthorizationExpired("authorization expires before it could be settled")
    # A longer-lived authorization than offered could be held back and settled long after the request.
    if authorization.valid_before > now_unix_s + requirements.max_timeout_seconds + CLOCK_SKEW_S_MAX:
        raise AuthorizationTooLong(
            f"validBefore may be at most maxTimeoutSeconds ({requirements.max_timeout_seconds} s) ahead"
        )
    domain = domain_for_requirements(
        chain_id=chain_id_from_caip2(requirements.network),
        asset=requirements.asset,
        extra=requirements.extra,
    )
    if isinstance(payload, PaymentPayload):
        _check_accepted_matches(payload.accepted, requirements)
    if recover_authorizer(domain, authorization, payload.payload.signature) != authorization.from_:
        raise InvalidSignature("signature was not made by `from`")
    return VerifiedPayment(
        x402_version=payload.x402_version,
        requirements=requirements,
        authorization=authorization,
        signature=payload.payload.signature,
        domain=domain,
    )


def _check_accepted_matches(accepted: PaymentRequirements, offered: PaymentRequirements) -> None:
    """The v2 `accepted` copy must be the offer itself; the domain it names must be the offer's domain."""
    accepted_extra, offered_extra = accepted.extra or {}, offered.extra or {}
    if accepted_extra.get("name") != offered_extra.get("name"):
        raise TokenNameMismatch("accepted extra.name differs from the offered token name")
    if accepted_extra.get("version") != offered_extra.get("version"):
        raise TokenVersionMismatch("accepted extra.version differs from the offered token version")
    if (accepted.pay_to, accepted.amount) != (offered.pay_to, offered.amount):
        raise InvalidPaymentRequirements("accepted payTo/amount differ from the offer")


async def verify_payment_onchain(reader: TokenReader, payment: VerifiedPayment) -> PayerBalance:
    """Chain id, token code, token name/version (cached), authorization unused, balance ≥ value.

    Returns the balance it checked, so the caller can also weigh the payer's other settlements in flight.
    """
    if await reader.chain_id() != payment.chain_id:
        raise NetworkMismatch(f"RPC chain is not {payment.requirements.network}")
    if not await reader.has_code(payment.asset):
        raise AssetNotDeployed("asset has no contract code")
    name, version = await reader.domain(payment.asset)
    if name != payment.domain.name:
        raise TokenNameMismatch("token name() differs from the requirement's extra.name")
    if version != payment.domain.version:
        raise TokenVersionMismatch("token version() differs from the requirement's extra.version")
    block_number = await reader.block_number()
    used, balance_atomic = await asyncio.gather(
        reader.authorization_used(payment.asset, payment.payer, payment.authorization.nonce),
        reader.balance_atomic(payment.asset, payment.payer, block_number=block_number),
    )
    if used:
        raise NonceAlreadyUsed("authorization nonce is already used or canceled on chain")
    if balance_atomic < payment.amount_atomic:
        raise InsufficientFunds("payer balance is below the authorized value")
    return PayerBalance(balance_atomic=balance_atomic, block_number=block_number)
