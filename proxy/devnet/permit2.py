"""Places Permit2 and the x402 `upto` proxy at their canonical addresses on a dev chain, and approves Permit2.

No registry package ships their bytecode, so contracts/ builds Permit2-compatible code from the
specifications; `anvil_setCode` puts the runtime code where the official x402 SDK expects it (the addresses
are CREATE2-deterministic on every real chain). Dev and test only: production never imports proxy.devnet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import AsyncWeb3

from contracts import load_artifact
from proxy.devnet.tokens import await_devnet_success, send_devnet_transaction
from x402.permit2 import PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS

__all__ = [
    "UINT256_MAX",
    "approve_permit2",
    "install_permit2_contracts",
    "permit2_allowance_atomic",
    "permit2_calldata_approve",
]

UINT256_MAX = 2**256 - 1
# approve(address,uint256) and allowance(address,address)
_APPROVE_SELECTOR = "095ea7b3"
_ALLOWANCE_SELECTOR = "dd62ed3e"


async def install_permit2_contracts(w3: AsyncWeb3[Any]) -> None:
    """Sets the runtime code of Permit2 and of the upto proxy at their canonical addresses (idempotent)."""
    for name, address in (("Permit2", PERMIT2_ADDRESS), ("X402UptoPermit2Proxy", UPTO_PROXY_ADDRESS)):
        code = load_artifact(name).deployed_bytecode
        await w3.provider.make_request("anvil_setCode", [address, code])
        placed = await w3.eth.get_code(AsyncWeb3.to_checksum_address(address))
        assert "0x" + bytes(placed).hex() == code, f"{name} was not placed at {address}"


def permit2_calldata_approve(amount_atomic: int) -> str:
    """approve(Permit2, amount) calldata: what a payer sends its token once before paying with `upto`."""
    assert 0 <= amount_atomic <= UINT256_MAX
    spender_word = bytes.fromhex(PERMIT2_ADDRESS[2:]).rjust(32, b"\0")
    return "0x" + _APPROVE_SELECTOR + spender_word.hex() + amount_atomic.to_bytes(32, "big").hex()


async def approve_permit2(
    w3: AsyncWeb3[Any],
    owners: Sequence[LocalAccount],
    *,
    tokens: Sequence[ChecksumAddress],
    amount_atomic: int = UINT256_MAX,
) -> None:
    """Every owner approves Permit2 for `amount_atomic` of every token (all sent, then receipts awaited)."""
    hashes = []
    for owner in owners:
        nonce: int = await w3.eth.get_transaction_count(owner.address, "pending")
        for token in tokens:
            tx = {"to": token, "data": permit2_calldata_approve(amount_atomic), "gas": 80_000}
            hashes.append(await send_devnet_transaction(w3, owner, tx, nonce))
            nonce += 1
    for tx_hash in hashes:
        await await_devnet_success(w3, tx_hash)


async def permit2_allowance_atomic(w3: AsyncWeb3[Any], token: ChecksumAddress, owner: str) -> int:
    """`owner`'s allowance of `token` to Permit2."""
    words = [bytes.fromhex(address[2:]).rjust(32, b"\0").hex() for address in (owner, PERMIT2_ADDRESS)]
    call: Any = {"to": token, "data": "0x" + _ALLOWANCE_SELECTOR + "".join(words)}
    return int.from_bytes(await w3.eth.call(call), "big")
