"""Our `sign-in-with-x` speaks the official SDK's wire format: a proof the SDK's client signs for our 402's
terms verifies here, and the EIP-4361 text we rebuild is byte for byte the `siwe` library's.

Method: the declaration is built by x402/siwx.py; the official SDK (x402 2.25.0 with signinwithethereum, in
.venv-agent, run as a subprocess) signs it with `create_siwx_payload` and encodes it with
`encode_siwx_header`, and also renders its message; our decoder and verifier must accept the header and
give the same text, and a proof for another key or a changed field must be refused.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from eth_account import Account

from tests.e2e.official_x402_agent import AGENT_PYTHON
from x402.siwx import (
    SiwxInvalid,
    SiwxScope,
    decode_siwx_header,
    render_siwx_message,
    siwx_declaration,
    verify_siwx,
)

SCOPE = SiwxScope(domain="127.0.0.1:8402", uri="http://127.0.0.1:8402", chain_id=31337, validity_s=300)
NOW_UNIX_S = 1_796_000_000
SDK_SIGNS = """
import asyncio, json, sys
from eth_account import Account
from x402.extensions.sign_in_with_x import create_siwx_payload, create_siwx_message, encode_siwx_header
declaration, key, url = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
chain = declaration["supportedChains"][0]
info = {**declaration["info"], "chainId": chain["chainId"], "type": chain["type"]}
account = Account.from_key(key)
payload = asyncio.run(create_siwx_payload(info, account, url))
message = create_siwx_message(info, account.address)
print(json.dumps({"header": encode_siwx_header(payload), "message": message}))
"""


def _sdk_sign(declaration: dict[str, object], key: str, tmp_dir: Path) -> dict[str, str]:
    assert AGENT_PYTHON.exists(), "no .venv-agent: run ./scripts/bootstrap --agent-sdk"
    completed = subprocess.run(
        [
            str(AGENT_PYTHON),
            "-c",
            SDK_SIGNS,
            json.dumps(declaration),
            key,
            SCOPE.uri + "/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
        cwd=tmp_dir,  # Not the repository: our x402/ would shadow the SDK's package on `-c`'s path.
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer: dict[str, str] = json.loads(completed.stdout)
    return answer


def test_the_official_sdk_signs_what_we_verify(tmp_path: Path) -> None:
    account = Account.create()
    declaration = siwx_declaration(
        scope=SCOPE,
        nonce="a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6",
        issued_at_unix_s=NOW_UNIX_S,
        statement="Sign in.",
    )
    signed = _sdk_sign(declaration, "0x" + account.key.hex().removeprefix("0x"), tmp_path)
    payload = decode_siwx_header(signed["header"])
    assert render_siwx_message(payload) == signed["message"]
    assert verify_siwx(payload, scope=SCOPE, now_unix_s=NOW_UNIX_S + 10) == account.address
    # The same proof past its window, or with a field changed after signing, is refused.
    with pytest.raises(SiwxInvalid) as expired:
        verify_siwx(payload, scope=SCOPE, now_unix_s=NOW_UNIX_S + SCOPE.validity_s + 1)
    assert expired.value.reason == "invalid_siwx_issued_at_too_old"
    changed = payload.model_copy(update={"nonce": "ffffffffffffffffffffffffffffffff"})
    with pytest.raises(SiwxInvalid) as forged:
        verify_siwx(changed, scope=SCOPE, now_unix_s=NOW_UNIX_S + 10)
    assert forged.value.reason == "invalid_siwx_signature"
