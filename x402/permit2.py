"""The `upto` scheme's wire payload and its Permit2 EIP-712 signature: models, digest, recovery, signing.

An `upto` payment is a Permit2 `PermitWitnessTransferFrom` whose spender is the x402 upto proxy and whose
witness `Witness(address to,address facilitator,uint256 validAfter)` binds the payee and the one address
allowed to settle it. The domain is Permit2's: `EIP712Domain(string name,uint256 chainId,address
verifyingContract)` with name "Permit2" and no version. The digest is built here from first principles,
the same way the Permit2 contract rebuilds it, so a signature that recovers here is one the chain accepts.
Pure: no I/O.
"""

from __future__ import annotations

import os

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import Field

from x402.eip3009 import split_signature
from x402.errors import InvalidSignature
from x402.models import Address, SignatureHex, Uint256, _Wire

__all__ = [
    "PERMIT2_ADDRESS",
    "PERMIT2_DOMAIN_TYPEHASH",
    "UPTO_PROXY_ADDRESS",
    "UPTO_WITNESS_TYPEHASH",
    "UPTO_WITNESS_TYPE_STRING",
    "Permit2TokenPermissions",
    "UptoEvmPayload",
    "UptoPermit2Authorization",
    "UptoWitness",
    "permit2_domain_separator",
    "random_permit2_nonce",
    "recover_upto_signer",
    "sign_upto_authorization",
    "upto_authorization_digest",
]

# Canonical addresses (CREATE2, the same on every EVM chain), as the official SDK has them.
PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
UPTO_PROXY_ADDRESS = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"

PERMIT2_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,uint256 chainId,address verifyingContract)")
_PERMIT2_NAME_HASH = keccak(text="Permit2")
_TOKEN_PERMISSIONS_TYPE = "TokenPermissions(address token,uint256 amount)"
_WITNESS_TYPE = "Witness(address to,address facilitator,uint256 validAfter)"
# What the proxy passes to Permit2 to complete its "PermitWitnessTransferFrom(...," stub.
UPTO_WITNESS_TYPE_STRING = f"Witness witness){_TOKEN_PERMISSIONS_TYPE}{_WITNESS_TYPE}"
UPTO_WITNESS_TYPEHASH = keccak(text=_WITNESS_TYPE)
_TOKEN_PERMISSIONS_TYPEHASH = keccak(text=_TOKEN_PERMISSIONS_TYPE)
_PERMIT_WITNESS_TRANSFER_FROM_TYPEHASH = keccak(
    text="PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,"
    "uint256 deadline,"
    + UPTO_WITNESS_TYPE_STRING
)
_PERMIT2_NONCE_BYTES = 32


class Permit2TokenPermissions(_Wire):
    token: Address
    amount: Uint256


class UptoWitness(_Wire):
    to: Address
    facilitator: Address
    valid_after: Uint256


class UptoPermit2Authorization(_Wire):
    """`payload.permit2Authorization`: the signed maximum (`permitted.amount`), spender, nonce, deadline."""

    from_: Address = Field(alias="from")
    permitted: Permit2TokenPermissions
    spender: Address
    nonce: Uint256
    deadline: Uint256
    witness: UptoWitness


class UptoEvmPayload(_Wire):
    signature: SignatureHex
    permit2_authorization: UptoPermit2Authorization


def random_permit2_nonce() -> int:
    """A random uint256 Permit2 nonce (unordered: any unused bit of the owner's bitmap will do)."""
    return int.from_bytes(os.urandom(_PERMIT2_NONCE_BYTES), "big")


def permit2_domain_separator(chain_id: int) -> bytes:
    assert chain_id > 0
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "uint256", "address"],
            [PERMIT2_DOMAIN_TYPEHASH, _PERMIT2_NAME_HASH, chain_id, PERMIT2_ADDRESS],
        )
    )


def upto_authorization_digest(chain_id: int, authorization: UptoPermit2Authorization) -> bytes:
    """keccak256("\\x19\\x01" ‖ Permit2 domain separator ‖ hashStruct(PermitWitnessTransferFrom))."""
    witness = authorization.witness
    witness_hash = keccak(
        abi_encode(
            ["bytes32", "address", "address", "uint256"],
            [UPTO_WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.valid_after],
        )
    )
    permitted_hash = keccak(
        abi_encode(
            ["bytes32", "address", "uint256"],
            [_TOKEN_PERMISSIONS_TYPEHASH, authorization.permitted.token, authorization.permitted.amount],
        )
    )
    struct_hash = keccak(
        abi_encode(
            ["bytes32", "bytes32", "address", "uint256", "uint256", "bytes32"],
            [
                _PERMIT_WITNESS_TRANSFER_FROM_TYPEHASH,
                permitted_hash,
                authorization.spender,
                authorization.nonce,
                authorization.deadline,
                witness_hash,
            ],
        )
    )
    digest = keccak(b"\x19\x01" + permit2_domain_separator(chain_id) + struct_hash)
    assert len(digest) == 32
    return digest


def recover_upto_signer(chain_id: int, authorization: UptoPermit2Authorization, signature: str) -> str:
    """The checksum address that signed (65-byte EOA signature); raises InvalidSignature otherwise."""
    v, r, s = split_signature(signature)
    try:
        sig = Signature(vrs=(v - 27, int.from_bytes(r, "big"), int.from_bytes(s, "big")))
        public_key = sig.recover_public_key_from_msg_hash(upto_authorization_digest(chain_id, authorization))
    except (BadSignature, ValueError) as error:
        raise InvalidSignature("signature does not recover a public key") from error
    recovered: str = to_checksum_address(public_key.to_canonical_address())
    return recovered


def sign_upto_authorization(
    account: LocalAccount, chain_id: int, authorization: UptoPermit2Authorization
) -> str:
    """The 65-byte r‖s‖v signature (0x-hex) of `account` over the upto authorization."""
    assert account.address == authorization.from_, "the signer must be the authorization's `from`"
    signed = account.unsafe_sign_hash(Hash32(upto_authorization_digest(chain_id, authorization)))
    return "0x" + (signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])).hex()
