"""On-chain settlement of a verified `upto` payment for the real amount: the proxy's `settle`, from our key.

`settle_upto` re-checks right before signing (Permit2 nonce unused, deadline not passed, allowance and
balance covering the amount: a payer may withdraw either after verification, and a transaction sent anyway
would revert and burn our gas), then sends `settle(permit, amount, owner, witness, signature)` to the upto
proxy through the Settler (its nonce management and `before_send`, where the proxy persists the signed
transaction). Zero is never sent: the caller settles nothing at all then. `recover_upto` finishes a stored
settlement after a crash without ever letting two transactions for one authorization both land.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from x402.errors import (
    InvalidTransactionState,
    Permit2DeadlineExpired,
    TransactionFailed,
    UptoSettlementExceedsAmount,
)
from x402.models import SettleResponse
from x402.permit2 import UPTO_PROXY_ADDRESS
from x402.settle import BeforeSend, Settler, SignedSettlement
from x402.upto import Permit2Reader, VerifiedUptoPayment
from x402.verify import SETTLE_MARGIN_S_DEFAULT

__all__ = ["UPTO_SETTLE_SELECTOR", "UptoSettlement", "recover_upto", "settle_upto", "upto_settle_calldata"]

UPTO_SETTLE_SELECTOR = keccak(
    text="settle(((address,uint256),uint256,uint256),uint256,address,(address,address,uint256),bytes)"
)[:4]
_TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")


@dataclass(frozen=True, slots=True)
class UptoSettlement:
    """A mined, successful `upto` settlement of `amount_atomic` (≤ the signed maximum)."""

    tx_hash: str
    block_number: int
    gas_used: int
    effective_gas_price_wei: int
    transfer_log_index: int
    payer: str
    amount_atomic: int
    network: str
    sender: str

    def to_settle_response(self) -> SettleResponse:
        return SettleResponse(
            success=True,
            transaction=self.tx_hash,
            network=self.network,
            payer=self.payer,
            amount=self.amount_atomic,
        )


def upto_settle_calldata(payment: VerifiedUptoPayment, amount_atomic: int) -> bytes:
    authorization = payment.payload.permit2_authorization
    witness = authorization.witness
    arguments = abi_encode(
        ["((address,uint256),uint256,uint256)", "uint256", "address", "(address,address,uint256)", "bytes"],
        [
            (
                (authorization.permitted.token, authorization.permitted.amount),
                authorization.nonce,
                authorization.deadline,
            ),
            amount_atomic,
            authorization.from_,
            (witness.to, witness.facilitator, witness.valid_after),
            bytes.fromhex(payment.payload.signature.removeprefix("0x")),
        ],
    )
    return UPTO_SETTLE_SELECTOR + arguments


async def settle_upto(
    settler: Settler,
    reader: Permit2Reader,
    payment: VerifiedUptoPayment,
    amount_atomic: int,
    *,
    before_send: BeforeSend | None = None,
) -> UptoSettlement:
    """Settles `amount_atomic` (0 < amount ≤ maximum). Raises X402Error subclasses; a refusal by the re-check
    happens before anything is signed, so nothing reached the chain."""
    assert amount_atomic > 0, "a zero settlement sends nothing"
    if amount_atomic > payment.max_atomic:
        raise UptoSettlementExceedsAmount(f"{amount_atomic} exceeds the signed maximum {payment.max_atomic}")

    async def recheck() -> None:
        block = await reader.tokens.w3.eth.get_block("latest")
        if payment.deadline_unix_s < int(block["timestamp"]) + SETTLE_MARGIN_S_DEFAULT:
            raise Permit2DeadlineExpired("the Permit2 deadline passed before settlement")
        await reader.require_spendable(payment, amount_atomic)

    signed = await settler.send_contract_call(
        chain_id=payment.chain_id,
        to=UPTO_PROXY_ADDRESS,
        data=upto_settle_calldata(payment, amount_atomic),
        recheck=recheck,
        before_send=before_send,
    )
    receipt = await settler.await_receipt(signed.tx_hash, "upto settlement")
    return _settlement_from_receipt(payment, amount_atomic, receipt)


async def recover_upto(
    settler: Settler,
    reader: Permit2Reader,
    payment: VerifiedUptoPayment,
    amount_atomic: int,
    signed: SignedSettlement,
    *,
    before_send: BeforeSend | None = None,
) -> UptoSettlement:
    """Finishes a settlement whose outcome a crash hid. Run it before new settlements start.

    The stored transaction mined → its receipt (reverted: TransactionFailed). Still mineable → awaited or
    rebroadcast. Never mineable (its transaction nonce went to another): only the proxy may spend the
    authorization and only our key may call it, so a used Permit2 nonce now means the payer invalidated it
    (InvalidTransactionState, nothing to collect); an unused one is settled afresh.
    """
    receipt = await settler.finish_signed_call(signed, "upto settlement")
    if receipt is not None:
        return _settlement_from_receipt(payment, amount_atomic, receipt)
    if await reader.nonce_used(payment.payer, payment.nonce):
        raise InvalidTransactionState("the payer invalidated the Permit2 nonce before it was settled")
    return await settle_upto(settler, reader, payment, amount_atomic, before_send=before_send)


def _settlement_from_receipt(
    payment: VerifiedUptoPayment, amount_atomic: int, receipt: Any
) -> UptoSettlement:
    tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
    if receipt["status"] != 1:
        raise TransactionFailed(
            "upto settlement transaction reverted",
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
        )
    log_index = _transfer_log_index(payment, receipt)
    # A successful settle of a non-zero amount always moves the token: its absence means a wrong receipt.
    assert log_index is not None, f"no Transfer log in {tx_hash}"
    return UptoSettlement(
        tx_hash=tx_hash,
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
        transfer_log_index=log_index,
        payer=payment.payer,
        amount_atomic=amount_atomic,
        network=payment.requirements.network,
        sender=str(receipt["from"]),
    )


def _transfer_log_index(payment: VerifiedUptoPayment, receipt: Any) -> int | None:
    payer_topic = abi_encode(["address"], [payment.payer])
    to_topic = abi_encode(["address"], [payment.payload.permit2_authorization.witness.to])
    for log in receipt["logs"]:
        topics = [bytes(HexBytes(t)) for t in log["topics"]]
        if str(log["address"]).lower() == payment.asset.lower() and topics == [
            _TRANSFER_TOPIC,
            payer_topic,
            to_topic,
        ]:
            return int(log["logIndex"])
    return None
