"""The paying side of `upto`, for agents and tests: sign a Permit2 witness transfer of at most the offer.

Follows the official SDK's choices: spender = the upto proxy, witness.to = payTo, witness.facilitator =
`extra.facilitatorAddress`, validAfter = 0, deadline = now + maxTimeoutSeconds, a random uint256 nonce.
Pure apart from the random nonce; no I/O.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from x402.models import PaymentRequirements, ResourceInfo
from x402.networks import chain_id_from_caip2
from x402.permit2 import (
    UPTO_PROXY_ADDRESS,
    Permit2TokenPermissions,
    UptoEvmPayload,
    UptoPermit2Authorization,
    UptoWitness,
    random_permit2_nonce,
    sign_upto_authorization,
)
from x402.upto import UPTO_SCHEME, UptoPaymentPayload

__all__ = ["sign_upto_payment"]


def sign_upto_payment(
    account: LocalAccount,
    requirements: PaymentRequirements,
    *,
    now_unix_s: int,
    resource: ResourceInfo | None = None,
    nonce: int | None = None,
) -> UptoPaymentPayload:
    """A v2 `upto` payload authorizing at most `requirements.amount` to `payTo`, settled by its facilitator"""
    assert requirements.scheme == UPTO_SCHEME
    extra = requirements.extra or {}
    facilitator = extra.get("facilitatorAddress")
    assert isinstance(facilitator, str), "an upto offer names its facilitator in extra.facilitatorAddress"
    authorization = UptoPermit2Authorization(
        from_=account.address,
        permitted=Permit2TokenPermissions(token=requirements.asset, amount=requirements.amount),
        spender=UPTO_PROXY_ADDRESS,
        nonce=random_permit2_nonce() if nonce is None else nonce,
        deadline=now_unix_s + requirements.max_timeout_seconds,
        witness=UptoWitness(to=requirements.pay_to, facilitator=facilitator, valid_after=0),
    )
    chain_id = chain_id_from_caip2(requirements.network)
    signature = sign_upto_authorization(account, chain_id, authorization)
    return UptoPaymentPayload(
        x402_version=2,
        resource=resource,
        accepted=requirements,
        payload=UptoEvmPayload(signature=signature, permit2_authorization=authorization),
    )
