"""Pydantic models of x402 messages, v1 and v2, with the wire's camelCase names as aliases.

Amounts, timestamps and other uint256 values travel as decimal digit strings and are `int` here.
Addresses are normalized to EIP-55 checksum form, nonces to lower-case hex. Pure; no I/O.
Serialize with `to_wire(model)` (by alias, no None fields) so every module writes the same JSON.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from eth_utils.address import to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "Address",
    "Bytes32Hex",
    "ExactEvmAuthorization",
    "ExactEvmPayload",
    "PaymentPayload",
    "PaymentPayloadV1",
    "PaymentRequired",
    "PaymentRequiredV1",
    "PaymentRequirements",
    "PaymentRequirementsV1",
    "ResourceInfo",
    "SettleResponse",
    "SignatureHex",
    "Uint256",
    "VerifyResponse",
    "to_wire",
]

_DIGITS = re.compile(r"^(0|[1-9][0-9]{0,77})$")
UINT256_LIMIT = 2**256


def _parse_uint(value: Any) -> Any:
    # Strings are the wire form; ints come from Python callers. bool is an int subclass and never money.
    if isinstance(value, bool):
        raise ValueError("expected a decimal string")
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise ValueError("expected a decimal digit string without sign, spaces or leading zeros")
        return int(value)
    return value


def _check_uint256(value: int) -> int:
    if not 0 <= value < UINT256_LIMIT:
        raise ValueError("out of uint256 range")
    return value


Uint256 = Annotated[
    int,
    BeforeValidator(_parse_uint),
    AfterValidator(_check_uint256),
    PlainSerializer(str, return_type=str),
]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(to_checksum_address)]
Bytes32Hex = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]
# 65 bytes for an EOA; longer for smart-wallet (EIP-1271/6492) signatures, bounded to keep headers small.
SignatureHex = Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{2}){1,2048}$")]


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore", strict=False
    )


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a model as it goes on the wire."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResourceInfo(_Wire):
    url: str = Field(max_length=2048)
    description: str | None = None
    mime_type: str | None = None


class PaymentRequirements(_Wire):
    """One way to pay (v2 `accepts[]` entry); `amount` is atomic token units."""

    scheme: str = Field(max_length=64)
    network: str = Field(max_length=64)
    amount: Uint256
    asset: Address
    pay_to: Address
    max_timeout_seconds: int = Field(gt=0)
    extra: dict[str, Any] | None = None


class PaymentRequirementsV1(_Wire):
    """One way to pay in v1: `maxAmountRequired`, a network name, and resource fields per entry."""

    scheme: str = Field(max_length=64)
    network: str = Field(max_length=64)
    max_amount_required: Uint256
    resource: str = Field(max_length=2048)
    description: str = ""
    mime_type: str = ""
    output_schema: dict[str, Any] | None = None
    pay_to: Address
    max_timeout_seconds: int = Field(gt=0)
    asset: Address
    extra: dict[str, Any] | None = None


class PaymentRequired(_Wire):
    """The v2 402 document (PAYMENT-REQUIRED header, and the same JSON as the body)."""

    x402_version: Literal[2] = 2
    error: str | None = None
    resource: ResourceInfo
    accepts: list[PaymentRequirements]
    extensions: dict[str, Any] = Field(default_factory=dict)


class PaymentRequiredV1(_Wire):
    x402_version: Literal[1] = 1
    error: str | None = None
    accepts: list[PaymentRequirementsV1]


class ExactEvmAuthorization(_Wire):
    """EIP-3009 TransferWithAuthorization fields; times are unix seconds."""

    from_: Address = Field(alias="from")
    to: Address
    value: Uint256
    valid_after: Uint256
    valid_before: Uint256
    nonce: Bytes32Hex


class ExactEvmPayload(_Wire):
    signature: SignatureHex
    authorization: ExactEvmAuthorization


class PaymentPayload(_Wire):
    """v2 PAYMENT-SIGNATURE content; `accepted` is the requirement the client chose, copied."""

    x402_version: int
    resource: ResourceInfo | None = None
    accepted: PaymentRequirements
    payload: ExactEvmPayload
    extensions: dict[str, Any] | None = None


class PaymentPayloadV1(_Wire):
    """v1 X-PAYMENT content."""

    x402_version: int
    scheme: str = Field(max_length=64)
    network: str = Field(max_length=64)
    payload: ExactEvmPayload


class VerifyResponse(_Wire):
    is_valid: bool
    invalid_reason: str | None = None
    payer: str | None = None


class SettleResponse(_Wire):
    """PAYMENT-RESPONSE / X-PAYMENT-RESPONSE content; on failure `transaction` is ""."""

    success: bool
    error_reason: str | None = None
    transaction: str
    network: str
    payer: str | None = None
    amount: Uint256 | None = None
