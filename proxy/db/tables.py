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

from proxy.db.latency_buckets import LATENCY_BUCKETS, latency_column, ttft_column

__all__ = [
    "PROXY_METADATA",
    "account_api_keys",
    "account_challenges",
    "account_withdrawals",
    "alert_deliveries",
    "alerts",
    "chain_watch_cursors",
    "org_audit_log",
    "org_budget_alerts",
    "org_budgets",
    "org_deposit_wallets",
    "org_keys",
    "org_members",
    "org_organizations",
    "org_rate_limits",
    "org_units",
    "serving_instances",
    "siwx_nonces",
    "stored_responses",
    "usage_events",
    "usage_rollups",
    "x402_settlements",
]

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
    # `exact` or `upto` (migration p0011); for upto the signed maximum, `value_atomic` being what is settled.
    Column("scheme", String(8), nullable=False, server_default="exact"),
    Column("max_atomic", BigInteger, nullable=True),
    UniqueConstraint(
        "network", "asset", "payer", "authorization_nonce", name="uq_x402_settlements_replay_key"
    ),
    Index("ix_x402_settlements_status", "status"),
)

# One row per served (or failed) request: what it cost and why, so every charge can be explained afterwards
# (tokens by kind, the prices used, the catalog version, the quote and hold, the route and its attempts).
usage_events = Table(
    "usage_events",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("payer_account", String(255), nullable=False),
    Column("api_key_id", BigInteger, nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("model_id", String(255), nullable=True),
    Column("provider", String(64), nullable=True),
    Column("strategy", String(32), nullable=True),
    Column("attempts_json", Text, nullable=False),
    Column("streamed", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("cache_write_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("usage_estimated", Integer, nullable=False),
    Column("prices_json", Text, nullable=False),
    Column("catalog_version", String(128), nullable=False),
    Column("quote_nano_usd", BigInteger, nullable=False),
    Column("cost_nano_usd", BigInteger, nullable=False),
    # The provider's reported cost beyond the quote (booked as an expense, not charged); 0 almost always.
    Column("overage_nano_usd", BigInteger, nullable=False, server_default="0"),
    Column("hold_id", BigInteger, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("time_to_first_token_ms", Integer, nullable=True),
    # JSON: how the route was chosen (task kind, difficulty, quality needed, ranked candidates, quotes).
    Column("route_explanation_json", Text, nullable=True),
    Index("ix_usage_events_payer_created", "payer_account", "created_at"),
    Index("ix_usage_events_request", "request_id"),
    # The spend-anomaly detector reads one hour of everyone, and trailing hours of one key (alerts, p0010).
    Index("ix_usage_events_created", "created_at"),
    Index("ix_usage_events_key_created", "api_key_id", "created_at"),
    # Set when an org key made the request (proxy/governance): spend can be grouped by any of them.
    Column("org_id", BigInteger, nullable=True),
    Column("org_unit_id", BigInteger, nullable=True),
    Column("org_member_id", BigInteger, nullable=True),
    Column("org_key_id", BigInteger, nullable=True),
    Index("ix_usage_events_org_created", "org_id", "created_at"),
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

# Nonces of x402 `sign-in-with-x` proofs already accepted, each kept until the proof could no longer be
# accepted anyway (too old): the primary key refuses a replayed proof, on every replica at once.
siwx_nonces = Table(
    "siwx_nonces",
    PROXY_METADATA,
    Column("nonce", String(64), primary_key=True),
    Column("address", String(42), nullable=False),
    Column("expires_at_unix_s", BigInteger, nullable=False, index=True),
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
    # The key's default routing strategy (a request's route object or header still wins); None: the server's.
    Column("route_strategy", String(16), nullable=True),
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

# One row per start of a serving process (a fresh id each time): it beats `heartbeat_at_unix_ms` while it
# lives, and its inference holds name its id in their metadata. Once `ended_at_unix_ms` is set (stopped,
# replaced by a new start under the same `name`, or silent longer than the staleness bound) the row never
# lives again, and any hold still pending under its id is released (proxy/serving/instances.py).
serving_instances = Table(
    "serving_instances",
    PROXY_METADATA,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("started_at_unix_ms", BigInteger, nullable=False),
    Column("heartbeat_at_unix_ms", BigInteger, nullable=False),
    Column("ended_at_unix_ms", BigInteger, nullable=True),
    Column("end_reason", String(16), nullable=True),
    Index("ix_serving_instances_name", "name"),
)


# Responses API conversation state (`store`, `previous_response_id`): one row per stored response, owned by
# the API key that created it — (`key_kind`, `key_id`), since wallet keys and org keys are numbered
# independently — gone after its retention. `items` is the whole conversation up to and
# including this response's output (JSON), so continuing one reads one row; `response` is the Response
# object returned.
stored_responses = Table(
    "stored_responses",
    PROXY_METADATA,
    Column("id", String(64), primary_key=True),
    Column("key_id", BigInteger, nullable=False),
    Column("key_kind", String(8), nullable=False, server_default="wallet"),
    Column("created_at_unix_ms", BigInteger, nullable=False),
    Column("expires_at_unix_ms", BigInteger, nullable=False),
    Column("items", Text, nullable=False),
    Column("response", Text, nullable=False),
    Index("ix_stored_responses_expires_at", "expires_at_unix_ms"),
)

# The alert outbox (proxy/observability/alerts): an alert is written once per (kind, dedup_key), with one
# delivery row per webhook endpoint configured when it was raised. A delivery is claimed by moving its
# `next_attempt_at_unix_ms` ahead by a lease before the request is sent, so a process killed mid-send leaves
# it due again once the lease passes: at-least-once, always under the alert's own id (the webhook-id).
alerts = Table(
    "alerts",
    PROXY_METADATA,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("kind", String(64), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("created_at_unix_ms", BigInteger, nullable=False),
    UniqueConstraint("kind", "dedup_key", name="uq_alerts_kind_dedup_key"),
    Index("ix_alerts_kind_seq", "kind", "seq"),
)

alert_deliveries = Table(
    "alert_deliveries",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("alert_seq", BigInteger, nullable=False),
    Column("endpoint", String(100), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at_unix_ms", BigInteger, nullable=False),
    Column("last_attempt_at_unix_ms", BigInteger, nullable=True),
    Column("delivered_at_unix_ms", BigInteger, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    UniqueConstraint("alert_seq", "endpoint", name="uq_alert_deliveries_alert_endpoint"),
    Index("ix_alert_deliveries_due", "state", "next_attempt_at_unix_ms"),
)

# Usage roll-ups (proxy/serving/usage_rollups.py): one row per (period, model, provider, strategy, key, payer,
# org, unit, member), upserted in the transaction that writes each usage event, so analytics never scan raw
# events. Each event counts in its hour's row (period_s 3600) and in its UTC day's (86400), which holds the
# sum of that day's hours: a month by day reads far fewer rows than by hour. A dimension that does not apply
# is '' (strings) or 0 (the key id), never NULL: NULLs are distinct under UNIQUE, and the upsert's ON
# CONFLICT must find the row. `wallet` is derived from `payer_account`
# (its address when a wallet pays). org/unit/member stay '' until governance records them on usage events.
# Latency and time-to-first-token are kept as fixed log-scale histograms (proxy/db/latency_buckets.py),
# one count column per bucket, so percentiles over any rows come from sums.
usage_rollups = Table(
    "usage_rollups",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("period_s", Integer, nullable=False),
    Column("period_start_unix_s", BigInteger, nullable=False),
    Column("model_id", String(255), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("api_key_id", BigInteger, nullable=False),
    Column("payer_account", String(255), nullable=False),
    Column("wallet", String(42), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("unit_id", String(64), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("spend_nano_usd", BigInteger, nullable=False),
    Column("overage_nano_usd", BigInteger, nullable=False),
    Column("latency_ms_sum", BigInteger, nullable=False),
    Column("latency_ms_min", BigInteger, nullable=False),
    Column("latency_ms_max", BigInteger, nullable=False),
    Column("ttft_count", BigInteger, nullable=False),
    Column("ttft_ms_sum", BigInteger, nullable=False),
    Column("ttft_ms_min", BigInteger, nullable=True),
    Column("ttft_ms_max", BigInteger, nullable=True),
    *(Column(latency_column(bucket), Integer, nullable=False) for bucket in range(LATENCY_BUCKETS)),
    *(Column(ttft_column(bucket), Integer, nullable=False) for bucket in range(LATENCY_BUCKETS)),
    UniqueConstraint(
        "period_s",
        "period_start_unix_s",
        "model_id",
        "provider",
        "strategy",
        "api_key_id",
        "payer_account",
        "org_id",
        "unit_id",
        "member_id",
        name="uq_usage_rollups_dims",
    ),
    Index("ix_usage_rollups_payer_period", "payer_account", "period_s", "period_start_unix_s"),
)

# ---- Organizations (proxy/governance): a tree of units, members with roles, org keys, budgets, audit. ----
# Times are unix seconds; amounts are integer nano-USD. Rows are never deleted: `deleted_at_unix_s` (or
# `revoked_at_unix_s`) marks them gone, so the audit log and usage events keep pointing at real rows.

# An organization; its root unit (kind "organization") is the top of its tree and carries org-wide grants
# and budgets. `credit_account` is the ledger account (`credit:org:<id>`) that pays for its keys.
org_organizations = Table(
    "org_organizations",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("root_unit_id", BigInteger, nullable=True),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("deleted_at_unix_s", BigInteger, nullable=True),
)

# A unit of an organization: its root ("organization"), a department or a team. `path` lists the ids from
# the root down to this unit ("/1/4/9/"), so "is X at or below Y" is a prefix test and a request's budget
# path is read from one row.
org_units = Table(
    "org_units",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("parent_id", BigInteger, nullable=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("path", String(512), nullable=False),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("deleted_at_unix_s", BigInteger, nullable=True),
    Index("ix_org_units_org", "org_id"),
)

# A member: a wallet placed in a unit with one role there, inherited by every unit below it.
org_members = Table(
    "org_members",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("wallet", String(42), nullable=False),
    Column("unit_id", BigInteger, nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("deleted_at_unix_s", BigInteger, nullable=True),
    Index("ix_org_members_wallet", "wallet"),
    Index("ix_org_members_org", "org_id"),
)

# An org key: a member's own (member_id set) or a team's service key (member_id NULL). Stored as SHA-256.
org_keys = Table(
    "org_keys",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("unit_id", BigInteger, nullable=False),
    Column("member_id", BigInteger, nullable=True),
    Column("name", String(100), nullable=False),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("revoked_at_unix_s", BigInteger, nullable=True),
    Index("ix_org_keys_org", "org_id"),
)

# A budget on a unit (a quota pool for everything beneath it), a member or a key. Its spend lives in the
# ledger, one pair of accounts per period (proxy/governance/budgets.py); this row is the policy.
org_budgets = Table(
    "org_budgets",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("scope_kind", String(8), nullable=False),
    Column("scope_id", BigInteger, nullable=False),
    Column("amount_nano_usd", BigInteger, nullable=False),
    Column("period", String(8), nullable=False),
    Column("mode", String(8), nullable=False),
    # Alert thresholds in basis points of the amount (5000 = 50 %), JSON list, ascending.
    Column("alert_at_bp_json", Text, nullable=False),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("deleted_at_unix_s", BigInteger, nullable=True),
    Index("ix_org_budgets_scope", "scope_kind", "scope_id"),
)

# Requests and tokens per minute on a unit (shared by everything beneath it) or a key; NULL: no limit.
org_rate_limits = Table(
    "org_rate_limits",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("scope_kind", String(8), nullable=False),
    Column("scope_id", BigInteger, nullable=False),
    Column("requests_per_minute", BigInteger, nullable=True),
    Column("tokens_per_minute", BigInteger, nullable=True),
    Column("created_at_unix_s", BigInteger, nullable=False),
    Column("deleted_at_unix_s", BigInteger, nullable=True),
    Index("ix_org_rate_limits_scope", "scope_kind", "scope_id"),
)

# A wallet whose plain token transfers to the settlement wallet credit an org (the chain watcher books them
# to `credit:org:<id>` instead of the wallet's own credit). Registered by the wallet itself.
org_deposit_wallets = Table(
    "org_deposit_wallets",
    PROXY_METADATA,
    Column("wallet", String(42), primary_key=True),
    Column("org_id", BigInteger, nullable=False),
    Column("registered_at_unix_s", BigInteger, nullable=False),
)

# A budget threshold crossed in a period: recorded once (unique), for the alert outbox to deliver.
org_budget_alerts = Table(
    "org_budget_alerts",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("budget_id", BigInteger, nullable=False),
    Column("period_start_unix_s", BigInteger, nullable=False),
    Column("threshold_bp", Integer, nullable=False),
    Column("spend_nano_usd", BigInteger, nullable=False),
    Column("amount_nano_usd", BigInteger, nullable=False),
    Column("crossed_at_unix_s", BigInteger, nullable=False),
    UniqueConstraint(
        "budget_id", "period_start_unix_s", "threshold_bp", name="uq_org_budget_alerts_crossing"
    ),
)

# Every admin action, append-only: who (wallet), what (action, target), when, and the row before → after.
org_audit_log = Table(
    "org_audit_log",
    PROXY_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target_id", BigInteger, nullable=True),
    Column("before_json", Text, nullable=True),
    Column("after_json", Text, nullable=True),
    Column("at_unix_s", BigInteger, nullable=False),
    Index("ix_org_audit_log_org", "org_id", "id"),
)
