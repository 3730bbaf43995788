"""EIP-712 typed data, digest, signing and signer recovery for EIP-3009 TransferWithAuthorization.

Pure: no I/O. The digest is computed here from first principles (keccak of the ABI-encoded struct) and
recovery applies the same rules as the token contract (65 bytes, v ∈ {27, 28}, low s), so a signature
accepted here is one the chain accepts too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from x402.errors import InvalidSignature
from x402.models import ExactEvmAuthorization

__all__ = [
    "AUTHORIZATION_NONCE_BYTES",
    "EIP712_DOMAIN_TYPEHASH",
    "TRANSFER_WITH_AUTHORIZATION_TYPEHASH",
    "Eip712Domain",
    "authorization_digest",
    "random_authorization_nonce",
    "recover_authorizer",
    "sign_authorization",
    "split_signature",
    "transfer_authorization_typed_data",
]

AUTHORIZATION_NONCE_BYTES = 32
SIGNATURE_BYTES = 65
EIP712_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak(
    text="TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
    "uint256 validBefore,bytes32 nonce)"
)
# secp256k1 group order; signatures with s above half of it are malleable and the token rejects them.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """The token's EIP-712 domain: name/version from the requirement's `extra`, chain from `network`."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def separator(self) -> bytes:
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    EIP712_DOMAIN_TYPEHASH,
                    keccak(text=self.name),
                    keccak(text=self.version),
                    self.chain_id,
                    self.verifying_contract,
                ],
            )
        )


def random_authorization_nonce() -> str:
    """A fresh random 32-byte EIP-3009 nonce as 0x-hex (EIP-3009 nonces are random, not sequential)."""
    return "0x" + os.urandom(AUTHORIZATION_NONCE_BYTES).hex()


def authorization_digest(domain: Eip712Domain, authorization: ExactEvmAuthorization) -> bytes:
    """keccak256("\\x19\\x01" ‖ domainSeparator ‖ hashStruct(TransferWithAuthorization))."""
    struct_hash = keccak(
        abi_encode(
            ["bytes32", "address", "address", "uint256", "uint256", "uint256", "bytes32"],
            [
                TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
                authorization.from_,
                authorization.to,
                authorization.value,
                authorization.valid_after,
                authorization.valid_before,
                bytes.fromhex(authorization.nonce[2:]),
            ],
        )
    )
    digest = keccak(b"\x19\x01" + domain.separator() + struct_hash)
    assert len(digest) == 32
    return digest


def transfer_authorization_typed_data(
    domain: Eip712Domain, authorization: ExactEvmAuthorization
) -> dict[str, Any]:
    """The full EIP-712 message (eth_signTypedData_v4 shape), for wallets that sign typed data."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {
            "from": authorization.from_,
            "to": authorization.to,
            "value": authorization.value,
            "validAfter": authorization.valid_after,
            "validBefore": authorization.valid_before,
            "nonce": bytes.fromhex(authorization.nonce[2:]),
        },
    }


def sign_authorization(
    account: LocalAccount, domain: Eip712Domain, authorization: ExactEvmAuthorization
) -> str:
    """The 65-byte r‖s‖v signature (0x-hex) of `account` over the authorization."""
    assert account.address == authorization.from_, "the signer must be the authorization's `from`"
    signed = account.unsafe_sign_hash(Hash32(authorization_digest(domain, authorization)))
    signature = "0x" + (
        signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
    ).hex()
    assert len(signature) == 2 + 2 * SIGNATURE_BYTES
    return signature


def split_signature(signature: str) -> tuple[int, bytes, bytes]:
    """(v, r, s) of a 65-byte signature, checked like the token does; raises InvalidSignature."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    if len(raw) != SIGNATURE_BYTES:
        raise InvalidSignature(f"signature must be {SIGNATURE_BYTES} bytes, got {len(raw)}")
    r, s, v = raw[:32], raw[32:64], raw[64]
    if v not in (27, 28):
        raise InvalidSignature("signature v must be 27 or 28")
    if int.from_bytes(s, "big") > _SECP256K1_N // 2:
        raise InvalidSignature("signature s is in the upper half (malleable)")
    return v, r, s


def recover_authorizer(domain: Eip712Domain, authorization: ExactEvmAuthorization, signature: str) -> str:
    """The checksum address that signed; raises InvalidSignature when nothing valid recovers."""
    v, r, s = split_signature(signature)
    try:
        sig = Signature(vrs=(v - 27, int.from_bytes(r, "big"), int.from_bytes(s, "big")))
        public_key = sig.recover_public_key_from_msg_hash(authorization_digest(domain, authorization))
    except (BadSignature, ValueError) as error:
        raise InvalidSignature("signature does not recover a public key") from error
    recovered: str = to_checksum_address(public_key.to_canonical_address())
    return recovered
