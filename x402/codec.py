"""Header codec: standard padded base64 of compact UTF-8 JSON, both ways, with a size bound.

Anything malformed raises InvalidPayload (the proxy answers 400). A payment header whose `x402Version`
differs from the header it arrived in raises InvalidX402Version. Pure; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from typing import Any, Literal, overload

from pydantic import BaseModel, ValidationError

from x402.errors import InvalidPayload, InvalidX402Version
from x402.models import PaymentPayload, PaymentPayloadV1, PaymentRequired, to_wire

__all__ = [
    "HEADER_BYTES_MAX",
    "decode_header_json",
    "decode_payment_header",
    "decode_payment_required_header",
    "encode_header",
]

# Real payment headers are ~1 KB; a bound keeps a hostile header from costing memory and CPU.
HEADER_BYTES_MAX = 16_384
# Real payloads nest 4 levels; a 16 KB header could nest ~12,000, which recurses through the parser.
HEADER_JSON_DEPTH_MAX = 16
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def encode_header(model: BaseModel) -> str:
    """Base64 of the model's compact wire JSON."""
    text = json.dumps(to_wire(model), separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_header_json(header_value: str) -> dict[str, Any]:
    """Base64 JSON object → dict; raises InvalidPayload for anything else."""
    if len(header_value) > HEADER_BYTES_MAX:
        raise InvalidPayload(f"header longer than {HEADER_BYTES_MAX} bytes")
    try:
        raw = base64.b64decode(header_value.strip().encode("ascii"), validate=True)
        if _nesting_depth(raw) > HEADER_JSON_DEPTH_MAX:
            raise InvalidPayload(f"header JSON nests deeper than {HEADER_JSON_DEPTH_MAX} levels")
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        # An unpaired surrogate escape (\ud800) decodes, then fails wherever the payload is stored or sent.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, binascii.Error, ValueError) as error:
        raise InvalidPayload(f"header is not base64 JSON: {type(error).__name__}") from error
    if not isinstance(document, dict):
        raise InvalidPayload("header JSON is not an object")
    return document


def _nesting_depth(raw: bytes) -> int:
    """How deep the brackets outside JSON strings nest, without recursing (the proxy's request bodies
    have their own bound; this library must not import it)."""
    steps = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
    brackets = [steps[byte] for byte in _JSON_STRING.sub(b"", raw) if byte in steps]
    return max(itertools.accumulate(brackets), default=0)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@overload
def decode_payment_header(header_value: str, version: Literal[2]) -> PaymentPayload: ...
@overload
def decode_payment_header(header_value: str, version: Literal[1]) -> PaymentPayloadV1: ...
@overload
def decode_payment_header(header_value: str, version: int) -> PaymentPayload | PaymentPayloadV1: ...
def decode_payment_header(header_value: str, version: int) -> PaymentPayload | PaymentPayloadV1:
    """Parses PAYMENT-SIGNATURE (`version=2`) or X-PAYMENT (`version=1`)."""
    assert version in (1, 2)
    document = decode_header_json(header_value)
    if document.get("x402Version") != version:
        raise InvalidX402Version(f"expected x402Version {version} in this header")
    model: type[PaymentPayload | PaymentPayloadV1] = PaymentPayload if version == 2 else PaymentPayloadV1
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidPayload(_summary(error)) from error


def decode_payment_required_header(header_value: str) -> PaymentRequired:
    """Parses a v2 PAYMENT-REQUIRED header (the client side)."""
    document = decode_header_json(header_value)
    if document.get("x402Version") != 2:
        raise InvalidX402Version("expected x402Version 2 in PAYMENT-REQUIRED")
    try:
        return PaymentRequired.model_validate(document)
    except ValidationError as error:
        raise InvalidPayload(_summary(error)) from error


def _summary(error: ValidationError) -> str:
    # Field paths and messages only: the input values may hold signatures and must not be echoed.
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]]
    return "invalid payment payload: " + "; ".join(parts)
