"""The paying side, for agents and tests: sign an `exact` EIP-3009 payment for a chosen requirement.

Follows the official SDK's choices: validAfter=0 (v2) or now-600 (v1), validBefore=now+maxTimeoutSeconds,
a random 32-byte nonce. Pure apart from the random nonce; no I/O.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from x402.eip3009 import Eip712Domain, random_authorization_nonce, sign_authorization
from x402.models import (
    ExactEvmAuthorization,
    ExactEvmPayload,
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
)
from x402.networks import chain_id_from_caip2, chain_id_from_v1_name

__all__ = ["V1_VALID_AFTER_SKEW_S", "domain_for_requirements", "sign_payment", "sign_payment_v1"]

# The SDK backdates v1 authorizations by ten minutes to tolerate clock skew between client and chain.
V1_VALID_AFTER_SKEW_S = 600


def domain_for_requirements(*, chain_id: int, asset: str, extra: dict[str, object] | None) -> Eip712Domain:
    """The EIP-712 domain named by a requirement (`extra.name`, `extra.version`)."""
    extra = extra or {}
    name, version = extra.get("name"), extra.get("version")
    assert isinstance(name, str), "requirement extra.name must be a string"
    assert isinstance(version, str), "requirement extra.version must be a string"
    return Eip712Domain(name=name, version=version, chain_id=chain_id, verifying_contract=asset)


def _signed_payload(
    account: LocalAccount,
    domain: Eip712Domain,
    *,
    pay_to: str,
    amount_atomic: int,
    valid_after_unix_s: int,
    valid_before_unix_s: int,
    nonce: str | None,
) -> ExactEvmPayload:
    authorization = ExactEvmAuthorization(
        from_=account.address,
        to=pay_to,
        value=amount_atomic,
        valid_after=valid_after_unix_s,
        valid_before=valid_before_unix_s,
        nonce=nonce or random_authorization_nonce(),
    )
    return ExactEvmPayload(
        signature=sign_authorization(account, domain, authorization), authorization=authorization
    )


def sign_payment(
    requirements: PaymentRequirements,
    account: LocalAccount,
    *,
    now_unix_s: int,
    resource: ResourceInfo | None = None,
    nonce: str | None = None,
    valid_after_unix_s: int | None = None,
    valid_before_unix_s: int | None = None,
) -> PaymentPayload:
    """A complete v2 PAYMENT-SIGNATURE payload paying exactly `requirements.amount`."""
    assert now_unix_s > 0
    domain = domain_for_requirements(
        chain_id=chain_id_from_caip2(requirements.network),
        asset=requirements.asset,
        extra=requirements.extra,
    )
    payload = _signed_payload(
        account,
        domain,
        pay_to=requirements.pay_to,
        amount_atomic=requirements.amount,
        valid_after_unix_s=0 if valid_after_unix_s is None else valid_after_unix_s,
        valid_before_unix_s=valid_before_unix_s or now_unix_s + requirements.max_timeout_seconds,
        nonce=nonce,
    )
    return PaymentPayload(x402_version=2, resource=resource, accepted=requirements, payload=payload)


def sign_payment_v1(
    requirements: PaymentRequirementsV1,
    account: LocalAccount,
    *,
    now_unix_s: int,
    nonce: str | None = None,
) -> PaymentPayloadV1:
    """A complete v1 X-PAYMENT payload paying exactly `requirements.max_amount_required`."""
    assert now_unix_s > V1_VALID_AFTER_SKEW_S
    domain = domain_for_requirements(
        chain_id=chain_id_from_v1_name(requirements.network),
        asset=requirements.asset,
        extra=requirements.extra,
    )
    payload = _signed_payload(
        account,
        domain,
        pay_to=requirements.pay_to,
        amount_atomic=requirements.max_amount_required,
        valid_after_unix_s=now_unix_s - V1_VALID_AFTER_SKEW_S,
        valid_before_unix_s=now_unix_s + requirements.max_timeout_seconds,
        nonce=nonce,
    )
    return PaymentPayloadV1(
        x402_version=1, scheme=requirements.scheme, network=requirements.network, payload=payload
    )
