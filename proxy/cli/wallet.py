"""`megarouter credit` and `megarouter withdraw`: a keyless wallet reads its credit and takes it back.

The wallet's private key comes from $MEGAROUTER_WALLET_KEY or `--key-file` (never a command-line argument,
which other users of the machine can read). The scope every signed message must name comes from the server
(`GET /v1/auth/scope`, its configuration); `credit` signs in with x402's sign-in-with-x (a fresh proof per
call), `withdraw` signs the EIP-4361 withdrawal request, sends it, and prints the transaction.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from proxy.accounts.signatures import withdrawal_message
from proxy.accounts.siwe import SiweScope, rfc3339_utc
from proxy.money import nano_usd_per_atomic, usd_text_to_nano_usd
from x402.siwx import SIGN_IN_WITH_X, SiwxPayload, render_siwx_message

__all__ = ["WALLET_KEY_ENV", "run_credit_command", "run_withdraw_command"]

WALLET_KEY_ENV = "MEGAROUTER_WALLET_KEY"
REQUEST_TIMEOUT_S = 120.0
# A withdrawal request is valid this long: long enough to reach the server, short enough to be useless later.
WITHDRAWAL_VALIDITY_S = 300
CREDIT_STATEMENT = "Show this wallet's MegaRouter credit."


def _account(args: argparse.Namespace, environ: Mapping[str, str]) -> LocalAccount:
    if args.key_file is not None:
        key = args.key_file.read_text(encoding="utf-8").strip()
    else:
        key = environ.get(WALLET_KEY_ENV, "")
    if not key:
        raise SystemExit(f"set {WALLET_KEY_ENV} or pass --key-file")
    account: LocalAccount = Account.from_key(key)
    return account


def _sign(account: LocalAccount, text: str) -> str:
    signature: bytes = Account.sign_message(encode_defunct(text=text), private_key=account.key).signature
    return "0x" + signature.hex().removeprefix("0x")


def sign_in_proof(account: LocalAccount, scope: dict[str, Any], *, now_unix_s: int) -> str:
    """A self-issued sign-in-with-x proof for `scope` (the server accepts each nonce once)."""
    fields = {
        "domain": scope["domain"],
        "address": account.address,
        "statement": CREDIT_STATEMENT,
        "uri": scope["uri"],
        "version": "1",
        "chainId": f"eip155:{scope['chain_id']}",
        "type": "eip191",
        "nonce": secrets.token_hex(16),
        "issuedAt": rfc3339_utc(now_unix_s),
    }
    message = render_siwx_message(SiwxPayload.model_validate({**fields, "signature": "0x"}))
    document = {**fields, "signature": _sign(account, message)}
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode("utf-8")).decode("ascii")


async def _get_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def _scope(session: aiohttp.ClientSession, api: str) -> dict[str, Any]:
    status, scope = await _get_json(session, f"{api}/v1/auth/scope", {})
    if status != 200:
        raise SystemExit(f"the server did not say its signing scope ({status}): {scope}")
    assert isinstance(scope, dict)
    return scope


async def _credit(session: aiohttp.ClientSession, api: str, account: LocalAccount) -> tuple[int, Any]:
    scope = await _scope(session, api)
    proof = sign_in_proof(account, scope, now_unix_s=int(time.time()))
    return await _get_json(session, f"{api}/v1/credits", {SIGN_IN_WITH_X: proof})


async def run_credit_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    account = _account(args, environ)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        status, body = await _credit(session, args.api.rstrip("/"), account)
    print(json.dumps(body, indent=2))
    return 0 if status == 200 else 1


def _asset(scope: dict[str, Any], choice: str | None) -> dict[str, Any]:
    assets: list[dict[str, Any]] = scope["assets"]
    if choice is None:
        return assets[0]
    for asset in assets:
        if choice.lower() in (asset["symbol"].lower(), asset["address"].lower()):
            return asset
    raise SystemExit(f"asset {choice} is not paid out; choose one of {[a['symbol'] for a in assets]}")


async def run_withdraw_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    account = _account(args, environ)
    api = args.api.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        scope = await _scope(session, api)
        asset = _asset(scope, args.asset)
        per_atomic = nano_usd_per_atomic(int(asset["decimals"]))
        if args.all:
            status, credit = await _credit(session, api, account)
            if status != 200:
                print(json.dumps(credit, indent=2), file=sys.stderr)
                return 1
            amount_atomic = int(credit["balance"]["available_nano_usd"]) // per_atomic
        else:
            amount_atomic = usd_text_to_nano_usd(args.amount) // per_atomic
        if amount_atomic <= 0:
            print("withdraw: nothing to withdraw (less than one token unit)", file=sys.stderr)
            return 1
        body = _withdrawal_body(account, scope, asset["address"], amount_atomic, now_unix_s=int(time.time()))
        async with session.post(f"{api}/v1/credits/withdraw", json=body) as response:
            status, answer = response.status, await response.json(content_type=None)
    print(json.dumps(answer, indent=2))
    if status not in (200, 202):
        return 1
    print(
        f"withdrawal {answer['status']}: {amount_atomic} atomic units, transaction {answer['tx_hash']}",
        file=sys.stderr,
    )
    return 0


def _withdrawal_body(
    account: LocalAccount, scope: dict[str, Any], asset: str, amount_atomic: int, *, now_unix_s: int
) -> dict[str, Any]:
    terms = {
        "address": account.address,
        "asset": asset,
        "amount_atomic": amount_atomic,
        "destination": account.address,
        "nonce": secrets.token_hex(16),
        "issued_at_unix_s": now_unix_s,
        "expires_at_unix_s": now_unix_s + WITHDRAWAL_VALIDITY_S,
    }
    message = withdrawal_message(
        scope=SiweScope(domain=scope["domain"], uri=scope["uri"], chain_id=int(scope["chain_id"])),
        wallet=account.address,
        asset=asset,
        amount_atomic=amount_atomic,
        destination=account.address,
        nonce=str(terms["nonce"]),
        issued_at_unix_s=now_unix_s,
        expires_at_unix_s=now_unix_s + WITHDRAWAL_VALIDITY_S,
    )
    return {**terms, "message": message, "signature": _sign(account, message)}
