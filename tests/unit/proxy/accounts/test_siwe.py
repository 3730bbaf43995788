"""EIP-4361 messages: the exact layout, strict parsing, scope checks, and where the scope comes from.

Method: pure functions against literal texts written out from the EIP-4361 ABNF (so a drift in the layout
shows as a diff), plus each way a message can name another site, resource or chain, and the scope's
derivation from Settings (configuration only: there is no request anywhere in these functions).
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.accounts import SiweMessage, SiweScope, parse_siwe, render_siwe, signing_scope
from proxy.accounts.errors import SignedMessageInvalid
from proxy.accounts.signatures import challenge_message, withdrawal_message
from proxy.accounts.siwe import check_siwe_scope
from proxy.settings import AccountsSettings, Settings

ADDRESS = "0x17c5185167401eD00cF5F5b2fc97D9BBfDb7D025"
TOKEN = "0x" + "ab" * 20
SCOPE = SiweScope(domain="router.example.com", uri="https://router.example.com", chain_id=8453)


def test_challenge_is_the_eip4361_layout_with_a_checksum_address() -> None:
    text = challenge_message(
        scope=SCOPE, address=ADDRESS.lower(), nonce="a1" * 16, issued_at_unix_s=0, expires_at_unix_s=300
    )
    assert text == (
        "router.example.com wants you to sign in with your Ethereum account:\n"
        "0x17c5185167401eD00cF5F5b2fc97D9BBfDb7D025\n"
        "\n"
        "Create a MegaRouter API key that spends this wallet's prepaid credit.\n"
        "\n"
        "URI: https://router.example.com\n"
        "Version: 1\n"
        "Chain ID: 8453\n"
        "Nonce: " + "a1" * 16 + "\n"
        "Issued At: 1970-01-01T00:00:00Z\n"
        "Expiration Time: 1970-01-01T00:05:00Z"
    )


def test_withdrawal_states_every_term_that_moves_money() -> None:
    text = withdrawal_message(
        scope=SCOPE,
        wallet=ADDRESS,
        asset=TOKEN,
        amount_atomic=5_000_000,
        destination=ADDRESS,
        nonce="b" * 16,
        issued_at_unix_s=1_700_000_000,
        expires_at_unix_s=1_700_000_300,
    )
    assert text == (
        "router.example.com wants you to sign in with your Ethereum account:\n"
        f"{ADDRESS}\n"
        "\n"
        "Withdraw 5000000 atomic units of token 0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB "
        f"from this wallet's MegaRouter credit to {ADDRESS}.\n"
        "\n"
        "URI: https://router.example.com\n"
        "Version: 1\n"
        "Chain ID: 8453\n"
        "Nonce: bbbbbbbbbbbbbbbb\n"
        "Issued At: 2023-11-14T22:13:20Z\n"
        "Expiration Time: 2023-11-14T22:18:20Z"
    )


def _message(**overrides: Any) -> SiweMessage:
    fields: dict[str, Any] = {
        "domain": SCOPE.domain,
        "address": ADDRESS,
        "statement": "Sign in.",
        "uri": SCOPE.uri,
        "chain_id": SCOPE.chain_id,
        "nonce": "12345678",
        "issued_at_unix_s": 10,
        "expires_at_unix_s": 20,
    }
    return SiweMessage.model_validate({**fields, **overrides})


def test_parse_reads_back_what_render_wrote() -> None:
    message = _message()
    assert parse_siwe(render_siwe(message)) == message
    check_siwe_scope(message, SCOPE)  # Our own scope passes.


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text.replace(ADDRESS, ADDRESS.lower()),  # not EIP-55
        lambda text: text.replace("Nonce: 12345678", "Nonce: 1234567"),  # under 8 characters
        lambda text: text.replace("Nonce: 12345678", "Nonce: 1234-5678"),  # not alphanumeric
        lambda text: text.replace("1970-01-01T00:00:10Z", "1970-01-01 00:00:10"),  # not RFC 3339
        lambda text: text.replace("\n\nURI", "\nURI"),  # blank line after the statement missing
        lambda text: text.replace("Chain ID: 8453", "Chain ID: 0x2105"),
        lambda text: text.replace("wants you to sign in", "would like you to sign in"),
        lambda text: text.replace("Sign in.", "Sign\rin."),
        lambda text: text + "\nResources:",
        lambda text: text.replace("Version: 1", "version: 1"),
    ],
)
def test_anything_but_the_layout_is_malformed(mangle: Any) -> None:
    text = mangle(render_siwe(_message()))
    with pytest.raises(SignedMessageInvalid) as refused:
        parse_siwe(text)
    assert refused.value.code == "message_malformed"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"domain": "evil.example"}, "domain_mismatch"),
        ({"domain": "router.example.com:8443"}, "domain_mismatch"),
        ({"uri": "https://evil.example"}, "uri_mismatch"),
        ({"chain_id": 1}, "chain_id_mismatch"),
        ({"version": "2"}, "version_unsupported"),
    ],
)
def test_another_scope_is_refused_with_its_own_code(overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(SignedMessageInvalid) as refused:
        check_siwe_scope(_message(**overrides), SCOPE)
    assert refused.value.code == code
    assert refused.value.status == 400


def _settings(**overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            "chain_rpc_url": "http://127.0.0.1:8545",
            "chain_id": 31337,
            "settlement_private_key": "0x" + "11" * 32,
            "assets": [{"symbol": "USDC", "address": TOKEN, "eip712_name": "USDC", "eip712_version": "2"}],
            "default_model": "openai/gpt-4o-mini",
            **overrides,
        }
    )


@pytest.mark.parametrize(
    ("overrides", "domain", "uri"),
    [
        ({}, "127.0.0.1:8402", "http://127.0.0.1:8402"),
        ({"host": "0.0.0.0", "port": 9000}, "0.0.0.0:9000", "http://0.0.0.0:9000"),
        ({"host": "::1"}, "[::1]:8402", "http://[::1]:8402"),
        (
            {"public_base_url": "https://router.example.com/"},
            "router.example.com",
            "https://router.example.com",
        ),
        (
            {"public_base_url": "https://example.com:8443/megarouter"},
            "example.com:8443",
            "https://example.com:8443/megarouter",
        ),
    ],
)
def test_scope_comes_from_the_configured_url_or_listen_address(
    overrides: dict[str, Any], domain: str, uri: str
) -> None:
    assert signing_scope(_settings(**overrides), AccountsSettings()) == SiweScope(
        domain=domain, uri=uri, chain_id=31337
    )


def test_configured_domain_and_uri_win() -> None:
    accounts = AccountsSettings(domain="megarouter.example", uri="https://megarouter.example/login")
    scope = signing_scope(_settings(public_base_url="https://other.example"), accounts)
    assert (scope.domain, scope.uri, scope.chain_id) == (
        "megarouter.example",
        "https://megarouter.example/login",
        31337,
    )


def test_a_public_url_without_scheme_fails_at_startup() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        signing_scope(_settings(public_base_url="router.example.com"), AccountsSettings())
