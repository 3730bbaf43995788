"""The test tokens behave like FiatToken V2 where x402 relies on it: both transferWithAuthorization
overloads, cancelAuthorization, the time window, replay protection and FiatToken's revert reasons.

Method: eth_call simulations on the session's Anvil (no state change), with calldata encoded by hand so
each overload is addressed by its exact signature.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError

from proxy.devnet.anvil import AnvilNode
from proxy.devnet.tokens import DevnetToken, DevnetTokens
from x402.eip3009 import Eip712Domain, authorization_digest, random_authorization_nonce, sign_authorization
from x402.models import ExactEvmAuthorization

pytestmark = pytest.mark.anvil

TRANSFER_VRS = (
    "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
)
TRANSFER_BYTES = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"
AUTH_TYPES = ["address", "address", "uint256", "uint256", "uint256", "bytes32"]


@pytest.fixture(scope="module")
async def w3(anvil: AnvilNode) -> AsyncIterator[AsyncWeb3[AsyncHTTPProvider]]:
    client = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        yield client
    finally:
        await client.provider.disconnect()


async def simulate(
    w3: AsyncWeb3[AsyncHTTPProvider],
    token: DevnetToken,
    sender: str,
    signature: str,
    types: list[str],
    args: list[Any],
) -> bytes:
    data = keccak(text=signature)[:4] + abi_encode(types, args)
    tx: Any = {"from": sender, "to": token.address, "data": data}
    return bytes(await w3.eth.call(tx))


def authorization(
    payer: LocalAccount, to: str, *, valid_after: int = 0, valid_before: int | None = None
) -> ExactEvmAuthorization:
    return ExactEvmAuthorization(
        from_=payer.address,
        to=to,
        value=1_000,
        valid_after=valid_after,
        valid_before=valid_before or int(time.time()) + 300,
        nonce=random_authorization_nonce(),
    )


def auth_args(auth: ExactEvmAuthorization) -> list[Any]:
    return [
        auth.from_,
        auth.to,
        auth.value,
        auth.valid_after,
        auth.valid_before,
        bytes.fromhex(auth.nonce[2:]),
    ]


def domain(token: DevnetToken) -> Eip712Domain:
    return Eip712Domain(
        name=token.name, version=token.version, chain_id=31337, verifying_contract=token.address
    )


@pytest.mark.parametrize("which", ["usdc", "usdt"])
async def test_both_overloads_accept_a_valid_authorization(
    w3: AsyncWeb3[AsyncHTTPProvider], tokens: DevnetTokens, anvil_accounts: list[LocalAccount], which: str
) -> None:
    token: DevnetToken = getattr(tokens, which)
    auth = authorization(anvil_accounts[1], anvil_accounts[2].address)
    signature = sign_authorization(anvil_accounts[1], domain(token), auth)
    raw = bytes.fromhex(signature[2:])
    relayer = anvil_accounts[3].address
    vrs = [raw[64], raw[:32], raw[32:64]]
    await simulate(
        w3, token, relayer, TRANSFER_VRS, [*AUTH_TYPES, "uint8", "bytes32", "bytes32"], auth_args(auth) + vrs
    )
    await simulate(w3, token, relayer, TRANSFER_BYTES, [*AUTH_TYPES, "bytes"], [*auth_args(auth), raw])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad_signature", "FiatTokenV2: invalid signature"),
        ("expired", "FiatTokenV2: authorization is expired"),
        ("early", "FiatTokenV2: authorization is not yet valid"),
        ("too_much", "ERC20: transfer amount exceeds balance"),
    ],
)
async def test_transfer_with_authorization_reverts_with_fiat_token_reasons(
    w3: AsyncWeb3[AsyncHTTPProvider],
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    case: str,
    message: str,
) -> None:
    # The chain's clock, not the wall's: eth_call runs at the latest block's timestamp, which lags the wall
    # clock by however long the chain sat idle (a slow test before this one would make "expired" valid).
    await w3.provider.make_request("evm_mine", [])
    payer, now_unix_s = anvil_accounts[1], int((await w3.eth.get_block("latest"))["timestamp"])
    auth = authorization(payer, anvil_accounts[2].address)
    if case == "expired":
        auth = authorization(payer, anvil_accounts[2].address, valid_before=now_unix_s - 10)
    if case == "early":
        auth = authorization(payer, anvil_accounts[2].address, valid_after=now_unix_s + 3_600)
    if case == "too_much":
        auth = auth.model_copy(update={"value": 10**30})
    signer = anvil_accounts[4] if case == "bad_signature" else payer
    signed = signer.unsafe_sign_hash(Hash32(_digest(tokens.usdc, auth)))
    raw = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
    with pytest.raises(ContractLogicError, match=message):
        await simulate(
            w3, tokens.usdc, payer.address, TRANSFER_BYTES, [*AUTH_TYPES, "bytes"], [*auth_args(auth), raw]
        )


def _digest(token: DevnetToken, auth: ExactEvmAuthorization) -> bytes:
    return authorization_digest(domain(token), auth)


async def test_only_the_deployer_mints(
    w3: AsyncWeb3[AsyncHTTPProvider], tokens: DevnetTokens, anvil_accounts: list[LocalAccount]
) -> None:
    args = [anvil_accounts[1].address, 1]
    await simulate(
        w3, tokens.usdt, anvil_accounts[0].address, "mint(address,uint256)", ["address", "uint256"], args
    )
    with pytest.raises(ContractLogicError, match="caller is not the deployer"):
        await simulate(
            w3, tokens.usdt, anvil_accounts[1].address, "mint(address,uint256)", ["address", "uint256"], args
        )


async def test_cancel_authorization_is_accepted_for_the_authorizer(
    w3: AsyncWeb3[AsyncHTTPProvider], tokens: DevnetTokens, anvil_accounts: list[LocalAccount]
) -> None:
    payer, token = anvil_accounts[1], tokens.usdc
    nonce = bytes.fromhex(random_authorization_nonce()[2:])
    struct_hash = keccak(
        abi_encode(
            ["bytes32", "address", "bytes32"],
            [keccak(text="CancelAuthorization(address authorizer,bytes32 nonce)"), payer.address, nonce],
        )
    )
    digest = keccak(b"\x19\x01" + domain(token).separator() + struct_hash)
    signed = payer.unsafe_sign_hash(Hash32(digest))
    raw = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
    cancel = "cancelAuthorization(address,bytes32,bytes)"
    await simulate(
        w3,
        token,
        anvil_accounts[5].address,
        cancel,
        ["address", "bytes32", "bytes"],
        [payer.address, nonce, raw],
    )
    with pytest.raises(ContractLogicError, match="FiatTokenV2: invalid signature"):
        await simulate(
            w3,
            token,
            anvil_accounts[5].address,
            cancel,
            ["address", "bytes32", "bytes"],
            [anvil_accounts[2].address, nonce, raw],
        )
