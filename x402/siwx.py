"""x402's `sign-in-with-x` extension (CAIP-122 / EIP-4361) for EVM wallets: the declaration a 402 carries,
the proof a client sends back in the `SIGN-IN-WITH-X` header, and its verification.

Wire format as the official SDK (`x402.extensions.sign_in_with_x`, x402 2.25.0) writes it: the 402's
`extensions["sign-in-with-x"]` is `{"info": {domain, uri, version, nonce, issuedAt, expirationTime?,
statement?, resources?}, "supportedChains": [{"chainId": "eip155:<id>", "type": "eip191"}], "schema": …}`;
the client signs the EIP-4361 text of those fields (as the `siwe` library renders it) with EIP-191 and sends
base64 JSON of the fields, its address, the chain and the signature. Pure: no I/O. Nonce replay is the
caller's to refuse (it owns the store); every other check is here, with the SDK's reason codes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from x402.codec import decode_header_json
from x402.eip3009 import split_signature
from x402.errors import InvalidPayload, InvalidSignature, X402Error

__all__ = [
    "SIGN_IN_WITH_X",
    "SiwxInvalid",
    "SiwxPayerMismatch",
    "SiwxPayload",
    "SiwxScope",
    "decode_siwx_header",
    "render_siwx_message",
    "siwx_declaration",
    "siwx_expires_at_unix_s",
    "verify_siwx",
]

SIGN_IN_WITH_X = "sign-in-with-x"  # The extension's key in a 402, and the request header's name.
SIWX_VERSION = "1"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
_NONCE = r"^[A-Za-z0-9]{8,64}$"
_TEXT_LINE = r"^[^\n\r]*$"
_STATEMENT_CHARS_MAX = 300
_URI_CHARS_MAX = 1_000
_RESOURCES_MAX = 8
_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "domain": {"type": "string"},
        "address": {"type": "string"},
        "statement": {"type": "string"},
        "uri": {"type": "string", "format": "uri"},
        "version": {"type": "string"},
        "chainId": {"type": "string"},
        "type": {"type": "string"},
        "nonce": {"type": "string"},
        "issuedAt": {"type": "string", "format": "date-time"},
        "expirationTime": {"type": "string", "format": "date-time"},
        "notBefore": {"type": "string", "format": "date-time"},
        "requestId": {"type": "string"},
        "resources": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "signature": {"type": "string"},
    },
    "required": ["domain", "address", "uri", "version", "chainId", "type", "nonce", "issuedAt", "signature"],
}


class SiwxInvalid(X402Error):
    """A sign-in proof refused; `reason` is one of the SDK's `invalid_siwx_*` codes."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # type: ignore[misc]  # Per instance: the SDK has one code per check.


class SiwxPayerMismatch(X402Error):
    """A signed-in wallet's request carried a payment from another wallet."""

    reason = "invalid_siwx_payer_mismatch"


class SiwxScope(BaseModel):
    """Whom proofs are for, from the server's configuration only: authority, resource URI, chain."""

    model_config = ConfigDict(frozen=True)

    domain: str
    uri: str
    chain_id: int = Field(gt=0)
    validity_s: int = Field(gt=0)


class SiwxPayload(BaseModel):
    """The client's proof (the `SIGN-IN-WITH-X` header), bounded field by field."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    domain: str = Field(max_length=255, pattern=_TEXT_LINE)
    address: str = Field(pattern=_ADDRESS)
    uri: str = Field(max_length=_URI_CHARS_MAX, pattern=_TEXT_LINE)
    version: str = Field(max_length=8)
    chain_id: str = Field(alias="chainId", max_length=40)
    type: str = Field(max_length=16)
    nonce: str = Field(pattern=_NONCE)
    issued_at: str = Field(alias="issuedAt", max_length=40)
    statement: str | None = Field(default=None, max_length=_STATEMENT_CHARS_MAX, pattern=_TEXT_LINE)
    expiration_time: str | None = Field(default=None, alias="expirationTime", max_length=40)
    not_before: str | None = Field(default=None, alias="notBefore", max_length=40)
    request_id: str | None = Field(default=None, alias="requestId", max_length=200, pattern=_TEXT_LINE)
    resources: list[str] | None = Field(default=None, max_length=_RESOURCES_MAX)
    signature_scheme: str | None = Field(default=None, alias="signatureScheme", max_length=16)
    signature: str = Field(max_length=2 + 2 * 65, pattern=r"^0x[0-9a-fA-F]*$")


def siwx_declaration(
    *, scope: SiwxScope, nonce: str, issued_at_unix_s: int, statement: str
) -> dict[str, Any]:
    """The 402's `extensions["sign-in-with-x"]`: the terms a client signs, with a fresh nonce."""
    assert re.fullmatch(_NONCE, nonce)
    info: dict[str, Any] = {
        "domain": scope.domain,
        "uri": scope.uri,
        "version": SIWX_VERSION,
        "nonce": nonce,
        "issuedAt": _rfc3339(issued_at_unix_s),
        "expirationTime": _rfc3339(issued_at_unix_s + scope.validity_s),
        "statement": statement,
        "resources": [scope.uri],
    }
    return {
        "info": info,
        "supportedChains": [{"chainId": f"eip155:{scope.chain_id}", "type": "eip191"}],
        "schema": _SCHEMA,
    }


def decode_siwx_header(header_value: str) -> SiwxPayload:
    """The header's payload; raises InvalidPayload for anything that is not one."""
    document = decode_header_json(header_value)
    try:
        return SiwxPayload.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidPayload(f"sign-in-with-x header: {where}: {first['msg']}") from error


def render_siwx_message(payload: SiwxPayload) -> str:
    """The EIP-4361 text the client signed, byte for byte as the `siwe` library's prepare_message()."""
    chain = _evm_chain_id(payload.chain_id)
    prefix = f"{payload.domain} wants you to sign in with your Ethereum account:\n{payload.address}"
    fields = [
        f"URI: {payload.uri}",
        f"Version: {payload.version}",
        f"Chain ID: {chain}",
        f"Nonce: {payload.nonce}",
        f"Issued At: {payload.issued_at}",
    ]
    if payload.expiration_time:
        fields.append(f"Expiration Time: {payload.expiration_time}")
    if payload.not_before:
        fields.append(f"Not Before: {payload.not_before}")
    if payload.request_id is not None:
        fields.append(f"Request ID: {payload.request_id}")
    if payload.resources is not None:
        fields.append("\n".join(["Resources:", *(f"- {resource}" for resource in payload.resources)]))
    prefix = f"{prefix}\n\n{payload.statement}" if payload.statement is not None else f"{prefix}\n"
    return prefix + "\n\n" + "\n".join(fields)


def verify_siwx(payload: SiwxPayload, *, scope: SiwxScope, now_unix_s: int) -> str:
    """The checksum address the proof signs in, after every check but nonce reuse; raises SiwxInvalid."""
    if payload.domain != scope.domain:
        raise SiwxInvalid(
            f"domain {payload.domain!r} is not this server's {scope.domain!r}",
            reason="invalid_siwx_domain_mismatch",
        )
    if payload.uri != scope.uri:
        raise SiwxInvalid(f"uri {payload.uri!r} is not {scope.uri!r}", reason="invalid_siwx_uri_mismatch")
    if payload.chain_id != f"eip155:{scope.chain_id}" or payload.type != "eip191":
        raise SiwxInvalid(
            f"chain {payload.chain_id!r} ({payload.type}) is not eip155:{scope.chain_id} (eip191)",
            reason="invalid_siwx_unsupported_chain",
        )
    if payload.version != SIWX_VERSION:
        raise SiwxInvalid(
            f"version {payload.version!r} is not {SIWX_VERSION!r}", reason="invalid_siwx_version"
        )
    _check_times(payload, scope=scope, now_unix_s=now_unix_s)
    if payload.address != to_checksum_address(payload.address):
        raise SiwxInvalid("the address must be in EIP-55 checksum form", reason="invalid_siwx_signature")
    signer = _recover_personal_sign(render_siwx_message(payload), payload.signature)
    if signer != payload.address:
        raise SiwxInvalid("the signature is not the address's", reason="invalid_siwx_signature")
    return signer


def siwx_expires_at_unix_s(payload: SiwxPayload, *, scope: SiwxScope) -> int:
    """Until when a proof could be accepted: its nonce must be remembered that long."""
    issued = _unix_s(payload.issued_at, reason="invalid_siwx_issued_at")
    return issued + scope.validity_s


def _check_times(payload: SiwxPayload, *, scope: SiwxScope, now_unix_s: int) -> None:
    issued = _unix_s(payload.issued_at, reason="invalid_siwx_issued_at")
    if issued > now_unix_s:
        raise SiwxInvalid("issuedAt is in the future", reason="invalid_siwx_issued_at_in_future")
    if now_unix_s - issued > scope.validity_s:
        raise SiwxInvalid(
            f"issued {now_unix_s - issued}s ago, beyond {scope.validity_s}s",
            reason="invalid_siwx_issued_at_too_old",
        )
    expiration = payload.expiration_time
    if expiration and _unix_s(expiration, reason="invalid_siwx_expiration_time") <= now_unix_s:
        raise SiwxInvalid("the message has expired", reason="invalid_siwx_expired")
    if payload.not_before and _unix_s(payload.not_before, reason="invalid_siwx_not_before") > now_unix_s:
        raise SiwxInvalid("notBefore is in the future", reason="invalid_siwx_not_yet_valid")


def _unix_s(text: str, *, reason: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise SiwxInvalid(f"{text!r} is not an RFC 3339 time", reason=reason) from error
    if moment.tzinfo is None:
        raise SiwxInvalid(f"{text!r} has no time zone", reason=reason)
    # Rounded down: a fraction of a second never extends a window.
    return int(moment.timestamp() // 1)


def _rfc3339(unix_s: int) -> str:
    assert unix_s >= 0
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _evm_chain_id(chain_id: str) -> int:
    match = re.fullmatch(r"eip155:([1-9][0-9]{0,19})", chain_id)
    if match is None:
        raise SiwxInvalid(f"{chain_id!r} is not an eip155 chain", reason="invalid_siwx_chain_id")
    return int(match.group(1))


def _recover_personal_sign(message: str, signature: str) -> str:
    """EIP-191 `personal_sign` recovery, with the low-s and v rules of the payment signatures."""
    raw = message.encode("utf-8")
    digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(raw)).encode("ascii") + raw)
    try:
        v, r, s = split_signature(signature)
        recovered = Signature(vrs=(v - 27, int.from_bytes(r, "big"), int.from_bytes(s, "big")))
        public_key = recovered.recover_public_key_from_msg_hash(digest)
    except (InvalidSignature, BadSignature, ValueError) as error:
        raise SiwxInvalid(
            f"the signature does not recover: {error}", reason="invalid_siwx_signature"
        ) from error
    address: str = to_checksum_address(public_key.to_canonical_address())
    return address
