"""EIP-4361 (Sign-In with Ethereum) messages: render, parse strictly, and check against our signing scope.

Pure: no I/O, no proxy state. The scope (domain, URI, chain id) always comes from the server's configuration
and is never taken from a request: a message naming any other scope was shown to its signer by someone
else, so it must never be accepted (that is the whole phishing defence of EIP-4361, wallet and server side).

Only the subset of the ABNF MegaRouter issues is rendered (no Not Before, Request ID or Resources), and
the parser accepts exactly what the renderer produces: the server compares the text byte for byte with
the one it issued or rebuilt, so parsing is only there to name *why* a message is refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from eth_utils.address import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field

from proxy.accounts.errors import SignedMessageInvalid

__all__ = [
    "SIWE_VERSION",
    "SiweMessage",
    "SiweScope",
    "check_siwe_scope",
    "parse_siwe",
    "render_siwe",
    "rfc3339_utc",
]

SIWE_VERSION = "1"
_PREAMBLE = " wants you to sign in with your Ethereum account:"
_MESSAGE_CHARS_MAX = 4_000
# RFC 3986 reserved / unreserved characters and the space: everything but LF and a few unsafe bytes.
_STATEMENT = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]*$")
_AUTHORITY = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(:[0-9]{1,5})?$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,64}$")
_CHAIN_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class SiweScope(BaseModel):
    """Who asks for the signature: the configured RFC 3986 authority, URI and EIP-155 chain id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str = Field(pattern=_AUTHORITY.pattern, max_length=255)
    uri: str = Field(pattern=_URI.pattern, max_length=1_000)
    chain_id: int = Field(gt=0)

    @classmethod
    def from_base_url(cls, base_url: str, *, chain_id: int) -> SiweScope:
        """The scope of a server at `base_url` (scheme://authority[/path]): domain is its authority."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{base_url!r} is not an absolute http(s) URL")
        return cls(domain=parts.netloc, uri=base_url.rstrip("/"), chain_id=chain_id)


class SiweMessage(BaseModel):
    """The EIP-4361 terms MegaRouter uses. Times are whole unix seconds, rendered as RFC 3339 UTC."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str
    address: str = Field(pattern=_ADDRESS.pattern)
    statement: str = Field(pattern=_STATEMENT.pattern, max_length=500)
    uri: str
    version: str = SIWE_VERSION
    chain_id: int = Field(gt=0)
    nonce: str = Field(pattern=_NONCE.pattern)
    issued_at_unix_s: int = Field(ge=0)
    expires_at_unix_s: int = Field(ge=0)


def rfc3339_utc(unix_s: int) -> str:
    assert unix_s >= 0
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime(_TIME_FORMAT)


def _unix_s(text: str) -> int:
    if not _TIME.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)")
    return int(datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC).timestamp())


def render_siwe(message: SiweMessage) -> str:
    """The exact text a wallet shows and signs (EIP-4361 ABNF, address in EIP-55 checksum form)."""
    assert message.issued_at_unix_s < message.expires_at_unix_s
    assert message.version == SIWE_VERSION
    return (
        f"{message.domain}{_PREAMBLE}\n"
        f"{to_checksum_address(message.address)}\n"
        "\n"
        f"{message.statement}\n"
        "\n"
        f"URI: {message.uri}\n"
        f"Version: {message.version}\n"
        f"Chain ID: {message.chain_id}\n"
        f"Nonce: {message.nonce}\n"
        f"Issued At: {rfc3339_utc(message.issued_at_unix_s)}\n"
        f"Expiration Time: {rfc3339_utc(message.expires_at_unix_s)}"
    )


def _field(line: str, label: str) -> str:
    if not line.startswith(label):
        raise ValueError(f"expected a line starting {label!r}")
    return line[len(label) :]


def _parse_lines(text: str) -> SiweMessage:
    lines = text.split("\n")
    if len(lines) != 11 or lines[2] != "" or lines[4] != "":
        raise ValueError("not the EIP-4361 layout (preamble, address, statement, then the fields)")
    if not lines[0].endswith(_PREAMBLE):
        raise ValueError(f"the first line must end with {_PREAMBLE!r}")
    domain = lines[0][: -len(_PREAMBLE)]
    if not _AUTHORITY.fullmatch(domain):
        raise ValueError("the domain is not an RFC 3986 authority")
    chain_id = _field(lines[7], "Chain ID: ")
    if not _CHAIN_ID.fullmatch(chain_id):
        raise ValueError("Chain ID must be a positive decimal integer")
    uri = _field(lines[5], "URI: ")
    if not _URI.fullmatch(uri):
        raise ValueError("URI is not an RFC 3986 URI")
    return SiweMessage(
        domain=domain,
        address=lines[1],
        statement=lines[3],
        uri=uri,
        version=_field(lines[6], "Version: "),
        chain_id=int(chain_id),
        nonce=_field(lines[8], "Nonce: "),
        issued_at_unix_s=_unix_s(_field(lines[9], "Issued At: ")),
        expires_at_unix_s=_unix_s(_field(lines[10], "Expiration Time: ")),
    )


def parse_siwe(text: str) -> SiweMessage:
    """The terms of a message in MegaRouter's EIP-4361 layout, or SignedMessageInvalid(message_malformed)."""
    if len(text) > _MESSAGE_CHARS_MAX:
        raise SignedMessageInvalid("message is too long", code="message_malformed", param="message")
    try:
        parsed = _parse_lines(text)
    except ValueError as error:  # pydantic's ValidationError is a ValueError too.
        raise SignedMessageInvalid(
            f"message is not an EIP-4361 sign-in message: {error}", code="message_malformed", param="message"
        ) from error
    # A wallet shows the checksum form; an all-lower-case address is a sign the text was not ours.
    if parsed.address != to_checksum_address(parsed.address):
        raise SignedMessageInvalid(
            "the address must be in EIP-55 checksum form", code="message_malformed", param="message"
        )
    return parsed


def check_siwe_scope(message: SiweMessage, scope: SiweScope) -> None:
    """Refuses a message meant for another site, resource or chain, each with its own code."""
    if message.domain != scope.domain:
        raise SignedMessageInvalid(
            f"the message names domain {message.domain!r}; this server signs in as {scope.domain!r}",
            code="domain_mismatch",
            param="message",
        )
    if message.uri != scope.uri:
        raise SignedMessageInvalid(
            f"the message names URI {message.uri!r}; this server's is {scope.uri!r}",
            code="uri_mismatch",
            param="message",
        )
    if message.chain_id != scope.chain_id:
        raise SignedMessageInvalid(
            f"the message names chain {message.chain_id}; this server's is {scope.chain_id}",
            code="chain_id_mismatch",
            param="message",
        )
    if message.version != SIWE_VERSION:
        raise SignedMessageInvalid(
            f"EIP-4361 version {message.version!r} is not supported (only {SIWE_VERSION!r})",
            code="version_unsupported",
            param="message",
        )
