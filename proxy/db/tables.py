"""SQLAlchemy Core tables owned by the proxy, on their own MetaData so the ledger's schema stays separate."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["PROXY_METADATA", "chain_watch_cursors", "x402_settlements"]

PROXY_METADATA = MetaData()

# One row per x402 authorization we accepted for settlement: the settlement intent. It is written before
# any transaction is signed, and records the signed transaction before it is sent, so that recovery after a
# crash can always finish it from the chain's state. The unique key is x402's replay key: two concurrent
# copies of one authorization can never both be claimed.
x402_settlements = Table(
    "x402_settlements",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("network", String(64), nullable=False),
    Column("asset", String(42), nullable=False),
    Column("payer", String(42), nullable=False),
    Column("authorization_nonce", String(66), nullable=False),
    Column("value_atomic", BigInteger, nullable=False),
    Column("valid_before_unix_s", BigInteger, nullable=False),
    Column("verified_payment_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("tx_hash", String(66), nullable=True),
    Column("raw_tx", Text, nullable=True),
    Column("tx_nonce", BigInteger, nullable=True),
    Column("from_block", BigInteger, nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("transfer_log_index", Integer, nullable=True),
    Column("ledger_transaction_id", BigInteger, nullable=True),
    Column("error_reason", String(80), nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("network", "asset", "payer", "authorization_nonce", name="uq_x402_settlements_replay_key"),
    Index("ix_x402_settlements_status", "status"),
)

# The chain watcher's progress per (network, token): every block below `next_block` has been scanned for
# Transfers to the settlement wallet and its deposits booked. `last_block_hash` is the hash of block
# `next_block - 1` when it was scanned, so a reorganisation that replaced it is noticed on the next poll.
chain_watch_cursors = Table(
    "chain_watch_cursors",
    PROXY_METADATA,
    Column("network", String(64), primary_key=True),
    Column("asset", String(42), primary_key=True),
    Column("next_block", BigInteger, nullable=False),
    Column("last_block_hash", String(66), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
