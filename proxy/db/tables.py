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

__all__ = ["PROXY_METADATA", "account_api_keys", "account_challenges", "account_withdrawals", "x402_settlements"]

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


# ---- Prepaid wallet accounts (proxy/accounts). Times are unix seconds; amounts are ints. ----

# A sign-in challenge: issued to an address, valid for minutes, consumed at most once (used_at_unix_s set
# by a conditional UPDATE, so two concurrent key requests with one signature cannot both succeed).
account_challenges = Table(
    "account_challenges",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("nonce", String(64), nullable=False, unique=True),
    Column("address", String(42), nullable=False),
    Column("message", Text, nullable=False),
    Column("issued_at_unix_s", BigInteger, nullable=False),
    Column("expires_at_unix_s", BigInteger, nullable=False),
    Column("used_at_unix_s", BigInteger, nullable=True),
)

# API keys bound to a wallet's credit. Only the SHA-256 of the key is stored; the prefix is for display.
account_api_keys = Table(
    "account_api_keys",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("wallet", String(42), nullable=False),
    Column("credit_account", String(255), nullable=False),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("name", String(100), nullable=True),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("last_used_at_unix_s", BigInteger, nullable=True),
    Column("revoked_at_unix_s", BigInteger, nullable=True),
    Index("ix_account_api_keys_wallet", "wallet"),
)

# A withdrawal: written before any token moves, updated with the signed transaction before it is sent, so a
# crash can always be finished from the chain. (wallet, request_nonce) is the signed request's replay key.
account_withdrawals = Table(
    "account_withdrawals",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("wallet", String(42), nullable=False),
    Column("request_nonce", String(66), nullable=False),
    Column("network", String(64), nullable=False),
    Column("asset", String(42), nullable=False),
    Column("destination", String(42), nullable=False),
    Column("amount_atomic", BigInteger, nullable=False),
    Column("amount_nano_usd", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("hold_id", BigInteger, nullable=False),
    Column("tx_hash", String(66), nullable=True),
    Column("raw_tx", Text, nullable=True),
    Column("tx_nonce", BigInteger, nullable=True),
    Column("from_block", BigInteger, nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("transfer_log_index", Integer, nullable=True),
    Column("ledger_transaction_id", BigInteger, nullable=True),
    Column("error_reason", String(80), nullable=True),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("updated_at_unix_s", BigInteger, nullable=False),
    UniqueConstraint("wallet", "request_nonce", name="uq_account_withdrawals_request"),
    Index("ix_account_withdrawals_status", "status"),
)
