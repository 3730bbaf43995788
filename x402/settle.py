"""On-chain settlement of verified `exact` payments: transferWithAuthorization sent from our own key.

Settler owns the settlement key's transaction nonces. Per settlement, under one asyncio.Lock: re-check
the authorization is unused and the balance suffices (the SDK does not, so a replay would burn gas),
sign with the next nonce, await the caller's `before_send` (the proxy persists the intent there), send.
Receipts are awaited outside the lock, so many settlements are in flight at once. A failed send resyncs
the nonce from the chain. After a crash `recover` finishes a stored settlement without ever sending a
second, different transaction for an authorization that could still be mined.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3Exception

from x402.chain import TokenReader
from x402.eip3009 import split_signature
from x402.errors import (
    ChainUnavailable,
    InsufficientFunds,
    InvalidTransactionState,
    NonceAlreadyUsed,
    SettlementPending,
    SettlementSendFailed,
    TransactionFailed,
)
from x402.models import SettleResponse
from x402.verify import VerifiedPayment

__all__ = [
    "TRANSFER_SELECTOR",
    "TRANSFER_WITH_AUTHORIZATION_SELECTOR",
    "BeforeSend",
    "GasSpent",
    "RecoveredSettlement",
    "RecoveredTransfer",
    "RecoveryMethod",
    "SettlementResult",
    "Settler",
    "SignedSettlement",
    "TransferRecoveryMethod",
    "TransferResult",
]

# transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)
TRANSFER_WITH_AUTHORIZATION_SELECTOR = bytes.fromhex("e3ee160e")
# transfer(address,uint256): a plain ERC-20 transfer out of the settlement wallet (withdrawals).
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
_TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")

RecoveryMethod = Literal["receipt", "rebroadcast", "discovered", "resettled"]
TransferRecoveryMethod = Literal["receipt", "rebroadcast", "resent"]


@dataclass(frozen=True, slots=True)
class SignedSettlement:
    """A signed, not yet sent settlement transaction: what the proxy persists before sending."""

    raw_tx: bytes
    tx_hash: str
    tx_nonce: int
    # The chain head when signed: log searches during recovery start here.
    from_block: int


@dataclass(frozen=True, slots=True)
class GasSpent:
    """What one mined transaction of the settlement key paid in gas, whether it succeeded or reverted."""

    tx_hash: str
    block_number: int
    gas_used: int
    effective_gas_price_wei: int
    reverted: bool

    @classmethod
    def of_revert(cls, error: TransactionFailed) -> GasSpent:
        assert error.tx_hash is not None
        return cls(
            tx_hash=error.tx_hash,
            block_number=error.block_number,
            gas_used=error.gas_used,
            effective_gas_price_wei=error.effective_gas_price_wei,
            reverted=True,
        )


@dataclass(frozen=True, slots=True)
class SettlementResult:
    """A mined, successful settlement."""

    tx_hash: str
    block_number: int
    gas_used: int
    effective_gas_price_wei: int
    transfer_log_index: int | None
    payer: str
    amount_atomic: int
    network: str
    # Who sent (and paid the gas of) the transaction: recovery may find the authorization settled by another.
    sender: str

    def to_settle_response(self) -> SettleResponse:
        return SettleResponse(
            success=True,
            transaction=self.tx_hash,
            network=self.network,
            payer=self.payer,
            amount=self.amount_atomic,
        )


@dataclass(frozen=True, slots=True)
class RecoveredSettlement:
    result: SettlementResult
    recovered_by: RecoveryMethod


@dataclass(frozen=True, slots=True)
class TransferResult:
    """A mined, successful ERC-20 transfer out of the settlement wallet."""

    tx_hash: str
    block_number: int
    gas_used: int
    effective_gas_price_wei: int
    transfer_log_index: int | None
    sender: str
    asset: str
    to: str
    amount_atomic: int
    network: str


@dataclass(frozen=True, slots=True)
class RecoveredTransfer:
    result: TransferResult
    recovered_by: TransferRecoveryMethod


BeforeSend = Callable[[SignedSettlement], Awaitable[None]]


class Settler:
    """Sends settlements from `account`; one instance per settlement key per process."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        *,
        reader: TokenReader | None = None,
        receipt_timeout_s: float = 60.0,
        rpc_timeout_s: float = 10.0,
        receipt_poll_s: float = 0.05,
        gas_limit: int = 150_000,
        priority_fee_wei: int = 1_000_000_000,
        log_search_blocks_max: int = 50_000,
    ) -> None:
        assert receipt_timeout_s > 0
        assert rpc_timeout_s > 0
        assert 21_000 < gas_limit <= 1_000_000
        self._w3 = w3
        self._account = account
        self._reader = reader or TokenReader(w3, call_timeout_s=rpc_timeout_s)
        self._receipt_timeout_s = receipt_timeout_s
        self._rpc_timeout_s = rpc_timeout_s
        self._receipt_poll_s = receipt_poll_s
        self._gas_limit = gas_limit
        self._priority_fee_wei = priority_fee_wei
        self._log_search_blocks_max = log_search_blocks_max
        self._lock = asyncio.Lock()
        self._next_tx_nonce: int | None = None
        # Authorizations sent by this process and not yet final; a second copy is refused at once.
        self._in_flight: set[tuple[str, str, str]] = set()
        # Atomic units per asset sent by `transfer` and not yet mined: the balance re-check must not count
        # tokens that an earlier, still pending transfer already spends.
        self._outgoing_in_flight_atomic: dict[str, int] = {}

    @property
    def address(self) -> str:
        return str(self._account.address)

    async def settle(
        self, payment: VerifiedPayment, *, before_send: BeforeSend | None = None
    ) -> SettlementResult:
        """Re-check, sign, `before_send`, send, await the receipt. Raises X402Error subclasses."""
        key = _authorization_key(payment)
        if key in self._in_flight:
            raise NonceAlreadyUsed("this authorization is already being settled")
        self._in_flight.add(key)
        try:
            async with self._lock:
                await self._recheck(payment)
                signed = await self._sign_locked(payment)
                if before_send is not None:
                    await before_send(signed)
                await self._send_locked(signed)
            return await self._await_result(payment, signed.tx_hash)
        finally:
            self._in_flight.discard(key)

    async def send_contract_call(
        self,
        *,
        chain_id: int,
        to: str,
        data: bytes,
        recheck: Callable[[], Awaitable[None]] | None = None,
        before_send: BeforeSend | None = None,
    ) -> SignedSettlement:
        """Under the settlement key's lock: `recheck` (raises to refuse, before anything is signed), sign with
        the next transaction nonce, `before_send` (the caller persists it), send. The receipt is the caller's
        to await (`await_receipt`), outside the lock, so other settlements proceed meanwhile."""
        async with self._lock:
            if recheck is not None:
                await recheck()
            signed = await self._sign_call_locked(chain_id=chain_id, to=to, data=data)
            if before_send is not None:
                await before_send(signed)
            await self._send_locked(signed)
        return signed

    async def await_receipt(self, tx_hash: str, what: str) -> Any:
        """The receipt of a sent transaction (reverted ones included); SettlementPending when none comes."""
        return await self._wait_for_receipt(tx_hash, what)

    async def finish_signed_call(self, signed: SignedSettlement, what: str) -> Any | None:
        """The receipt of a stored transaction whose outcome a crash hid, never sending a different one.

        Mined → its receipt. Not mined and its transaction nonce still free → awaited if the node holds it,
        else the very same raw bytes are rebroadcast and awaited. Its nonce taken by another transaction →
        None: it can never be mined, so the caller may sign a fresh one.
        """
        receipt = await self._receipt_or_none(signed.tx_hash)
        if receipt is not None:
            return receipt
        confirmed_nonce = int(
            await self._rpc(self._w3.eth.get_transaction_count(self._account.address, "latest"), "nonce")
        )
        if signed.tx_nonce >= confirmed_nonce:
            if not await self._is_known(signed.tx_hash):
                async with self._lock:
                    try:
                        send = self._w3.eth.send_raw_transaction(signed.raw_tx)
                        await self._rpc(send, "eth_sendRawTransaction")
                    finally:
                        self._next_tx_nonce = None
            return await self._wait_for_receipt(signed.tx_hash, what)
        # Mined between the two reads, or never: the receipt says which.
        return await self._receipt_or_none(signed.tx_hash)

    async def _recheck(self, payment: VerifiedPayment) -> None:
        used, balance_atomic = await asyncio.gather(
            self._reader.authorization_used(payment.asset, payment.payer, payment.authorization.nonce),
            self._reader.balance_atomic(payment.asset, payment.payer),
        )
        if used:
            raise NonceAlreadyUsed("authorization nonce is already used or canceled on chain")
        if balance_atomic < payment.amount_atomic:
            raise InsufficientFunds("payer balance is below the authorized value")

    async def _rpc(self, call: Awaitable[Any], what: str) -> Any:
        try:
            async with asyncio.timeout(self._rpc_timeout_s):
                return await call
        except (TimeoutError, OSError, Web3Exception) as error:
            raise ChainUnavailable(f"RPC {what} failed: {type(error).__name__}") from error

    async def _sign_locked(self, payment: VerifiedPayment) -> SignedSettlement:
        return await self._sign_call_locked(
            chain_id=payment.chain_id, to=payment.asset, data=_transfer_with_authorization_calldata(payment)
        )

    async def _sign_call_locked(self, *, chain_id: int, to: str, data: bytes) -> SignedSettlement:
        """Signs a contract call with the next transaction nonce of the settlement key (not sent yet)."""
        assert self._lock.locked()
        assert len(data) >= 4
        if self._next_tx_nonce is None:
            self._next_tx_nonce = int(
                await self._rpc(self._w3.eth.get_transaction_count(self._account.address, "pending"), "nonce")
            )
        block = await self._rpc(self._w3.eth.get_block("latest"), "eth_getBlockByNumber")
        base_fee_wei = int(block.get("baseFeePerGas", 0))
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": self._next_tx_nonce,
            "to": to_checksum_address(to),
            "value": 0,
            "data": data,
            "gas": self._gas_limit,
            "maxPriorityFeePerGas": self._priority_fee_wei,
            # Twice the base fee survives several full blocks of base-fee growth before the tx stalls.
            "maxFeePerGas": 2 * base_fee_wei + self._priority_fee_wei,
        }
        signed_tx = self._account.sign_transaction(tx)
        return SignedSettlement(
            raw_tx=bytes(signed_tx.raw_transaction),
            tx_hash=HexBytes(signed_tx.hash).to_0x_hex(),
            tx_nonce=self._next_tx_nonce,
            from_block=int(block["number"]),
        )

    async def _send_locked(self, signed: SignedSettlement) -> None:
        assert self._lock.locked()
        assert self._next_tx_nonce == signed.tx_nonce
        try:
            await self._rpc(self._w3.eth.send_raw_transaction(signed.raw_tx), "eth_sendRawTransaction")
        except ChainUnavailable as error:
            # The node may or may not hold the transaction: ask the chain for the nonce next time.
            self._next_tx_nonce = None
            raise SettlementSendFailed(str(error), tx_hash=signed.tx_hash) from error
        self._next_tx_nonce = signed.tx_nonce + 1

    async def _receipt_or_none(self, tx_hash: str) -> Any:
        try:
            return await self._rpc(self._w3.eth.get_transaction_receipt(HexBytes(tx_hash)), "receipt")
        except ChainUnavailable as error:
            if isinstance(error.__cause__, TransactionNotFound):
                return None
            raise

    async def _is_known(self, tx_hash: str) -> bool:
        """True while the node holds the transaction (pending or mined)."""
        try:
            await self._rpc(self._w3.eth.get_transaction(HexBytes(tx_hash)), "eth_getTransactionByHash")
        except ChainUnavailable as error:
            if isinstance(error.__cause__, TransactionNotFound):
                return False
            raise
        return True

    async def gas_spent(self, tx_hash: str) -> GasSpent | None:
        """The gas a transaction paid once mined (reverted or not); None while the chain has no receipt."""
        receipt = await self._receipt_or_none(tx_hash)
        if receipt is None:
            return None
        return GasSpent(
            tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
            reverted=receipt["status"] != 1,
        )

    async def _wait_for_receipt(self, tx_hash: str, what: str) -> Any:
        """The receipt of a sent transaction; SettlementPending (outcome unknown) when none comes in time
        or the chain cannot be reached meanwhile: the transaction may still be mined, so nothing is final."""
        try:
            return await self._w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self._receipt_timeout_s, poll_latency=self._receipt_poll_s
            )
        except TimeExhausted as error:
            raise SettlementPending(f"no {what} receipt within the bound", tx_hash=tx_hash) from error
        except (TimeoutError, OSError, Web3Exception) as error:
            raise SettlementPending(
                f"chain unreachable while awaiting the {what} receipt: {type(error).__name__}",
                tx_hash=tx_hash,
            ) from error

    async def _await_result(self, payment: VerifiedPayment, tx_hash: str) -> SettlementResult:
        return _result_from_receipt(payment, await self._wait_for_receipt(tx_hash, "settlement"))

    async def recover(
        self,
        payment: VerifiedPayment,
        signed: SignedSettlement,
        *,
        before_send: BeforeSend | None = None,
    ) -> RecoveredSettlement:
        """Finishes a settlement whose outcome a crash hid. Run it before new settlements start.

        Mined → its receipt. Unknown and the authorization unused → rebroadcast the very same raw tx, or,
        when its tx nonce was taken by another tx (so it can never be mined), settle afresh. Authorization
        used → find the AuthorizationUsed log (whoever sent it) and return that transaction's receipt.
        """
        receipt = await self._receipt_or_none(signed.tx_hash)
        if receipt is not None and receipt["status"] == 1:
            return RecoveredSettlement(_result_from_receipt(payment, receipt), "receipt")
        if await self._reader.authorization_used(payment.asset, payment.payer, payment.authorization.nonce):
            return RecoveredSettlement(await self._discover(payment, signed), "discovered")
        confirmed_nonce = int(
            await self._rpc(self._w3.eth.get_transaction_count(self._account.address, "latest"), "nonce")
        )
        if receipt is None and signed.tx_nonce >= confirmed_nonce:
            if await self._is_known(signed.tx_hash):
                return RecoveredSettlement(await self._await_result(payment, signed.tx_hash), "receipt")
            async with self._lock:
                try:
                    send = self._w3.eth.send_raw_transaction(signed.raw_tx)
                    await self._rpc(send, "eth_sendRawTransaction")
                finally:
                    self._next_tx_nonce = None
            return RecoveredSettlement(await self._await_result(payment, signed.tx_hash), "rebroadcast")
        # Our tx reverted or its nonce went to another tx: it can never be mined, so a new one is safe.
        return RecoveredSettlement(await self.settle(payment, before_send=before_send), "resettled")

    async def _discover(self, payment: VerifiedPayment, signed: SignedSettlement) -> SettlementResult:
        head = int(await self._rpc(self._w3.eth.block_number, "eth_blockNumber"))
        from_block = max(signed.from_block, head - self._log_search_blocks_max, 0)
        logs = await self._reader.authorization_used_logs(
            payment.asset, payment.payer, payment.authorization.nonce, from_block=from_block
        )
        if not logs:
            raise InvalidTransactionState("authorization was canceled, not used: nothing can be settled")
        receipt = await self._receipt_or_none(logs[0].tx_hash)
        assert receipt is not None, "a log's transaction has a receipt"
        return _result_from_receipt(payment, receipt)

    # ------------------------------------------------------------------------------ plain transfers

    async def transfer(
        self, asset: str, to: str, amount_atomic: int, *, before_send: BeforeSend | None = None
    ) -> TransferResult:
        """Sends `amount_atomic` of the ERC-20 `asset` from the settlement wallet to `to` (withdrawals).

        Shares the settlement nonce manager and lock, so transfers and settlements never collide on a
        transaction nonce. Under the lock the wallet's balance, less what earlier transfers still in flight
        spend, must cover the amount (else InsufficientFunds, nothing signed); then sign, `before_send` (the
        caller persists the signed transaction), send, and await the receipt outside the lock.
        """
        assert amount_atomic > 0
        assert is_address(asset)
        assert is_address(to)
        key = asset.lower()
        reserved = False
        try:
            async with self._lock:
                chain_id, balance_atomic = await asyncio.gather(
                    self._reader.chain_id(), self._reader.balance_atomic(asset, self.address)
                )
                in_flight_atomic = self._outgoing_in_flight_atomic.get(key, 0)
                if balance_atomic - in_flight_atomic < amount_atomic:
                    raise InsufficientFunds(
                        f"settlement wallet holds {balance_atomic} atomic units, {in_flight_atomic} of them "
                        f"already being sent; {amount_atomic} requested"
                    )
                signed = await self._sign_call_locked(
                    chain_id=chain_id, to=asset, data=_transfer_calldata(to, amount_atomic)
                )
                self._outgoing_in_flight_atomic[key] = in_flight_atomic + amount_atomic
                reserved = True
                if before_send is not None:
                    await before_send(signed)
                await self._send_locked(signed)
            return await self._await_transfer(asset, to, amount_atomic, signed.tx_hash)
        finally:
            if reserved:
                self._outgoing_in_flight_atomic[key] -= amount_atomic
                assert self._outgoing_in_flight_atomic[key] >= 0

    async def _await_transfer(self, asset: str, to: str, amount_atomic: int, tx_hash: str) -> TransferResult:
        receipt = await self._wait_for_receipt(tx_hash, "transfer")
        return _transfer_result_from_receipt(
            receipt,
            sender=self.address,
            asset=asset,
            to=to,
            amount_atomic=amount_atomic,
            network=f"eip155:{await self._reader.chain_id()}",
        )

    async def _mined_transfer(self, receipt: Any, asset: str, to: str, amount_atomic: int) -> TransferResult:
        network = f"eip155:{await self._reader.chain_id()}"
        return _transfer_result_from_receipt(
            receipt, sender=self.address, asset=asset, to=to, amount_atomic=amount_atomic, network=network
        )

    async def recover_transfer(
        self,
        asset: str,
        to: str,
        amount_atomic: int,
        signed: SignedSettlement,
        *,
        before_send: BeforeSend | None = None,
    ) -> RecoveredTransfer:
        """Finishes a transfer whose outcome a crash hid, never letting two transfers for it land.

        Mined → its receipt (a reverted one raises TransactionFailed: nothing moved, the caller decides).
        Unknown with its nonce still free → await it if the node holds it, else rebroadcast the very same raw
        transaction. Unknown with its nonce taken by another transaction → it can never be mined, so a fresh
        transfer (through `transfer`, with its balance check and `before_send`) is safe.
        """
        assert amount_atomic > 0
        receipt = await self._receipt_or_none(signed.tx_hash)
        if receipt is not None:
            return RecoveredTransfer(await self._mined_transfer(receipt, asset, to, amount_atomic), "receipt")
        confirmed_nonce = int(
            await self._rpc(self._w3.eth.get_transaction_count(self._account.address, "latest"), "nonce")
        )
        if signed.tx_nonce >= confirmed_nonce:
            if not await self._is_known(signed.tx_hash):
                async with self._lock:
                    try:
                        send = self._w3.eth.send_raw_transaction(signed.raw_tx)
                        await self._rpc(send, "eth_sendRawTransaction")
                    finally:
                        self._next_tx_nonce = None
                return RecoveredTransfer(
                    await self._await_transfer(asset, to, amount_atomic, signed.tx_hash), "rebroadcast"
                )
            return RecoveredTransfer(
                await self._await_transfer(asset, to, amount_atomic, signed.tx_hash), "receipt"
            )
        # Our nonce is used, perhaps by OUR transaction, mined between the first receipt read and the nonce
        # read: read the receipt again before concluding that it can never be mined.
        receipt = await self._receipt_or_none(signed.tx_hash)
        if receipt is not None:
            return RecoveredTransfer(await self._mined_transfer(receipt, asset, to, amount_atomic), "receipt")
        fresh = await self.transfer(asset, to, amount_atomic, before_send=before_send)
        return RecoveredTransfer(fresh, "resent")


def _authorization_key(payment: VerifiedPayment) -> tuple[str, str, str]:
    return (payment.asset.lower(), payment.payer.lower(), payment.authorization.nonce.lower())


def _transfer_with_authorization_calldata(payment: VerifiedPayment) -> bytes:
    authorization = payment.authorization
    v, r, s = split_signature(payment.signature)
    arguments = abi_encode(
        ["address", "address", "uint256", "uint256", "uint256", "bytes32", "uint8", "bytes32", "bytes32"],
        [
            authorization.from_,
            authorization.to,
            authorization.value,
            authorization.valid_after,
            authorization.valid_before,
            bytes.fromhex(authorization.nonce[2:]),
            v,
            r,
            s,
        ],
    )
    return TRANSFER_WITH_AUTHORIZATION_SELECTOR + arguments


def _raise_if_reverted(receipt: Any, what: str) -> None:
    if receipt["status"] != 1:
        raise TransactionFailed(
            f"{what} transaction reverted",
            tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
        )


def _result_from_receipt(payment: VerifiedPayment, receipt: Any) -> SettlementResult:
    tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
    _raise_if_reverted(receipt, "settlement")
    return SettlementResult(
        tx_hash=tx_hash,
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
        transfer_log_index=_transfer_log_index(payment, receipt),
        payer=payment.payer,
        amount_atomic=payment.amount_atomic,
        network=payment.requirements.network,
        sender=str(receipt["from"]),
    )


def _transfer_log_index(payment: VerifiedPayment, receipt: Any) -> int | None:
    payer_topic = abi_encode(["address"], [payment.payer])
    for log in receipt["logs"]:
        topics = [bytes(HexBytes(t)) for t in log["topics"]]
        if (
            str(log["address"]).lower() == payment.asset.lower()
            and len(topics) == 3
            and topics[0] == _TRANSFER_TOPIC
            and topics[1] == payer_topic
        ):
            return int(log["logIndex"])
    return None


def _transfer_calldata(to: str, amount_atomic: int) -> bytes:
    return TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to_checksum_address(to), amount_atomic])


def _transfer_result_from_receipt(
    receipt: Any, *, sender: str, asset: str, to: str, amount_atomic: int, network: str
) -> TransferResult:
    tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
    _raise_if_reverted(receipt, "transfer")
    result = TransferResult(
        tx_hash=tx_hash,
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
        transfer_log_index=_log_index_of_transfer(receipt, asset=asset, sender=sender, to=to),
        sender=sender,
        asset=asset,
        to=to,
        amount_atomic=amount_atomic,
        network=network,
    )
    # A successful ERC-20 transfer always emits its Transfer event; its absence means a wrong asset/receipt.
    assert result.transfer_log_index is not None, f"no Transfer log in {tx_hash}"
    return result


def _log_index_of_transfer(receipt: Any, *, asset: str, sender: str, to: str) -> int | None:
    sender_topic = abi_encode(["address"], [to_checksum_address(sender)])
    to_topic = abi_encode(["address"], [to_checksum_address(to)])
    for log in receipt["logs"]:
        topics = [bytes(HexBytes(t)) for t in log["topics"]]
        if (
            str(log["address"]).lower() == asset.lower()
            and len(topics) == 3
            and topics[0] == _TRANSFER_TOPIC
            and topics[1] == sender_topic
            and topics[2] == to_topic
        ):
            return int(log["logIndex"])
    return None
