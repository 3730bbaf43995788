"""MegaRouter's validated configuration. Built by `proxy/app/config.py` (file + environment) or by the demo.

Relationships between settings are checked here, at start-up, so a bad combination fails before serving.
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from proxy.routing.health import HealthPolicy

__all__ = [
    "DEFAULT_DATABASE_URL",
    "AccountsSettings",
    "AlertEndpointSettings",
    "AlertsSettings",
    "AssetSettings",
    "DashboardSettings",
    "OrgSettings",
    "ProviderSettings",
    "ResponsesSettings",
    "ReturningPayersSettings",
    "Settings",
    "SpendAnomalySettings",
]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.megarouter/megarouter.db"


class AssetSettings(BaseModel):
    """A stablecoin MegaRouter accepts, counted at par with USD."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(min_length=1, max_length=16)
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    eip712_name: str = Field(min_length=1)
    eip712_version: str = Field(min_length=1)
    decimals: int = Field(default=6, ge=0, le=9)


class ProviderSettings(BaseModel):
    """Where one provider's API lives. With no api_key, the provider is served by a simulator URL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_kind: Literal["openai", "anthropic", "gemini"]
    base_url: str = Field(pattern=r"^https?://")
    api_key: SecretStr | None = None


class ReturningPayersSettings(BaseModel):
    """Keyless x402 payers spending their credit: `sign-in-with-x` on paid requests, and the operator's
    policy that sends credit above a threshold back to its wallet (`[returning_payers]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Offer `sign-in-with-x` in every 402, and serve proven wallets from their credit.
    sign_in_enabled: bool = True
    # A proof is accepted this long after its `issuedAt` (its nonce is remembered that long).
    sign_in_validity_s: int = Field(default=300, ge=10, le=3600)
    # Proofs checked per client IP: a token bucket of this many, refilled one per interval (process memory).
    sign_in_burst_per_ip: int = Field(default=120, ge=1, le=100_000)
    sign_in_refill_interval_s: float = Field(default=0.25, gt=0, le=3600)
    sign_in_rate_ips_max: int = Field(default=10_000, ge=1, le=1_000_000)
    # Credit return: None disables it. A wallet's available credit above the threshold goes back to the
    # wallet in one transfer per wallet per run, when the amount is at least `credit_return_min_usd`.
    credit_return_threshold_usd: str | None = Field(default=None, pattern=r"^[0-9]{1,15}(\.[0-9]{1,9})?$")
    credit_return_min_usd: str = Field(default="0.01", pattern=r"^[0-9]{1,15}(\.[0-9]{1,9})?$")
    credit_return_interval_s: float = Field(default=86_400.0, gt=0)
    credit_return_wallets_per_run_max: int = Field(default=100, ge=1, le=10_000)


class AccountsSettings(BaseModel):
    """Prepaid wallet accounts: API keys, sign-in challenges and withdrawals."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The EIP-4361 domain and URI of every signed message. None derives them from the server's configured
    # public_base_url (or its listen host:port); never from a request's Host, which a phishing page chooses.
    domain: str | None = Field(default=None, min_length=1, max_length=255)
    uri: str | None = Field(default=None, min_length=1, max_length=1_000)
    challenge_validity_s: int = Field(default=300, ge=10, le=3600)
    # Unexpired challenges kept per address (a new one replaces the oldest) and in all: each is a row.
    challenges_per_address_max: int = Field(default=5, ge=1, le=100)
    challenges_pending_max: int = Field(default=10_000, ge=1, le=1_000_000)
    # Challenges per client IP: a token bucket of this many, refilled one per interval (in process memory).
    challenge_burst_per_ip: int = Field(default=20, ge=1, le=10_000)
    challenge_refill_interval_s: float = Field(default=3.0, gt=0, le=3600)
    # IPs whose buckets are remembered; beyond it the idlest are forgotten (the pending cap still holds).
    challenge_rate_ips_max: int = Field(default=10_000, ge=1, le=1_000_000)
    # A client's clock may run this far ahead of ours when it stamps `Issued At` on a withdrawal.
    signed_clock_skew_s_max: int = Field(default=30, ge=0, le=300)
    api_key_prefix: str = Field(default="mr_live_", pattern=r"^[a-z_]{1,16}$")
    api_key_random_bytes: int = Field(default=32, ge=16, le=64)
    api_keys_per_wallet_max: int = Field(default=50, ge=1, le=1000)
    # last_used is a hint, not an audit trail: writing it on every request would serialize keyed requests.
    key_last_used_resolution_s: int = Field(default=60, ge=0)
    # Keys looked up in the last this-many seconds are served from process memory (issue 10: the lookup was
    # a database round trip per request). A revoke takes effect at once in the process that revoked, and
    # within this bound in every other replica. 0 disables the cache.
    api_key_cache_ttl_s: float = Field(default=2.0, ge=0, le=60)
    api_key_cache_entries_max: int = Field(default=10_000, ge=1, le=1_000_000)
    # A signed withdrawal request may be valid at most this long ahead.
    withdrawal_request_validity_s_max: int = Field(default=600, ge=10, le=86_400)
    # The withdrawal's hold must outlive the slowest send + receipt, and a restart that finishes it.
    withdrawal_hold_timeout_s: int = Field(default=86_400, ge=600, le=7 * 86_400)
    statement_lines_max: int = Field(default=50, ge=1, le=1000)

    @model_validator(mode="after")
    def _relationships(self) -> AccountsSettings:
        if self.withdrawal_hold_timeout_s <= self.withdrawal_request_validity_s_max:
            raise ValueError("withdrawal_hold_timeout_s must exceed withdrawal_request_validity_s_max")
        return self


class ResponsesSettings(BaseModel):
    """Conversation state of the Responses API (`[responses]` in the config file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A stored response (and the conversation up to it) can be continued or read back for this long.
    retention_s: int = Field(default=30 * 86_400, ge=60, le=400 * 86_400)
    # The longest conversation kept, in items (messages, function calls and their outputs).
    conversation_items_max: int = Field(default=1_000, ge=2, le=100_000)


# ---------------------------------------------------------------- alerts (`[alerts]`)


class AlertEndpointSettings(BaseModel):
    """A webhook that receives every alert, signed with its Standard Webhooks secret (`whsec_<base64>`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://", max_length=2_000)
    secret: SecretStr
    # Names the endpoint in the delivery records; the URL when not given.
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        body = value.removeprefix("whsec_").rstrip("=")
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except binascii.Error:
            raise ValueError("alert endpoint secret must be 'whsec_' followed by base64") from None
        if len(key) < 24:
            raise ValueError("alert endpoint secret must hold at least 24 random bytes")
        return secret

    @property
    def endpoint_name(self) -> str:
        return self.name or self.url


class SpendAnomalySettings(BaseModel):
    """A key's or wallet's spend in the current UTC hour alerts when it exceeds
    median + max(mad_multiplier × MAD, min_excess_nano_usd) of its own previous `baseline_hours` hours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    baseline_hours: int = Field(default=24, ge=3, le=24 * 14)
    # Decimal, so the threshold is computed exactly on integer nano-USD (TOML floats are parsed via str).
    mad_multiplier: Decimal = Field(default=Decimal(6), gt=0, le=1_000)
    # The least excess over the median that alerts (1 USD): tiny or perfectly steady spenders stay quiet.
    min_excess_nano_usd: int = Field(default=1_000_000_000, ge=1)
    # Subjects examined per evaluation, biggest spenders of the hour first: a bound on the queries.
    subjects_max: int = Field(default=200, ge=1, le=10_000)

    @field_validator("mad_multiplier", mode="before")
    @classmethod
    def _exact(cls, value: object) -> object:
        return Decimal(str(value)) if isinstance(value, float) else value


class AlertsSettings(BaseModel):
    """Alert outbox, webhook delivery and detectors (see proxy/observability/alerts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoints: tuple[AlertEndpointSettings, ...] = Field(default=(), max_length=20)
    # Detectors run this often (and once at start-up).
    evaluate_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    # A deployment's breaker open (or half-open, not yet recovered) this long raises `breaker_open`.
    breaker_open_after_s: float = Field(default=300.0, gt=0)
    # Settlement failures and reconciliation runs younger than this are examined (each alerts once).
    lookback_s: int = Field(default=86_400, ge=60, le=30 * 86_400)
    spend_anomaly: SpendAnomalySettings = Field(default_factory=SpendAnomalySettings)
    # Delivery: attempts per endpoint, then the delivery is marked failed (and kept in the history).
    delivery_attempts_max: int = Field(default=10, ge=1, le=100)
    # Back-off before attempt n+1: min(retry_max_s, retry_base_s × 2^(n-1)), with half of it random.
    retry_base_s: float = Field(default=5.0, gt=0)
    retry_max_s: float = Field(default=3_600.0, gt=0)
    delivery_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # A claimed delivery whose sender died is sent again after this long; None: delivery_timeout_s + 30.
    delivery_lease_s: float | None = Field(default=None, gt=0, le=3_600)
    # How often the deliverer looks for due deliveries when nothing woke it.
    delivery_poll_interval_s: float = Field(default=1.0, gt=0, le=3_600)
    deliveries_per_pass_max: int = Field(default=50, ge=1, le=1_000)

    @model_validator(mode="after")
    def _relationships(self) -> AlertsSettings:
        names = [endpoint.endpoint_name for endpoint in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("alerts.endpoints: each endpoint name (or URL) may be listed once")
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("alerts.retry_base_s must not exceed retry_max_s")
        if self.delivery_lease_s is not None and self.delivery_lease_s <= self.delivery_timeout_s:
            raise ValueError("alerts.delivery_lease_s must exceed delivery_timeout_s")
        return self

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is left to its sender (the request's timeout plus bookkeeping)."""
        return self.delivery_lease_s or self.delivery_timeout_s + 30.0


class DashboardSettings(BaseModel):
    """The web dashboard at /dashboard: its signed session cookie and one-time login links."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # HMAC key of the session cookie (MEGAROUTER_DASHBOARD__SESSION_SECRET). None: a random key per process,
    # so sessions end when it restarts; replicas behind one load balancer need the same configured key.
    session_secret: SecretStr | None = Field(default=None, min_length=32)
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 86_400)
    # A one-time login link (the demo prints one) must be opened within this long, once.
    login_token_ttl_s: int = Field(default=600, ge=10, le=86_400)
    # Unredeemed login links kept in process memory; beyond it the oldest is forgotten.
    login_tokens_pending_max: int = Field(default=100, ge=1, le=10_000)


class RoutePreviewSettings(BaseModel):
    """POST /v1/route/preview: free, so rate-limited per API key (or per client IP without one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A token bucket of this many previews per key or IP, refilled one per interval (in process memory).
    burst: int = Field(default=30, ge=1, le=10_000)
    refill_interval_s: float = Field(default=1.0, gt=0, le=3600)
    # Keys/IPs whose buckets are remembered; beyond it the idlest are forgotten.
    clients_max: int = Field(default=10_000, ge=1, le=1_000_000)


class OrgSettings(BaseModel):
    """Organizations (`[orgs]` in the config file). Stripe secrets come from the environment only:
    MEGAROUTER_STRIPE_WEBHOOK_SECRET (verifies webhook signatures; without it the webhook answers 404)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stripe_webhook_secret: SecretStr | None = None
    # How old a signed webhook may be (Stripe's own default tolerance): older deliveries are refused.
    stripe_webhook_tolerance_s: int = Field(default=300, ge=1, le=3600)
    # Rate-limit counters in Redis (when `redis_url` is set) live under this prefix.
    rate_limit_key_prefix: str = Field(default="megarouter:ratelimit:", min_length=1, max_length=100)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8402, ge=0, le=65535)
    public_base_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size_max: int = Field(default=10, ge=1, le=200)

    chain_rpc_url: str = Field(pattern=r"^https?://")
    chain_id: int = Field(gt=0)
    settlement_private_key: SecretStr
    assets: tuple[AssetSettings, ...] = Field(min_length=1)

    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    catalog_overrides_path: Path | None = None
    default_model: str

    # Routing: the server's default strategy, how many candidates a request may try, and in how long.
    default_strategy: Literal["balanced", "cost", "latency", "availability"] = "balanced"
    route_candidates_max: int = Field(default=5, ge=1, le=20)
    route_attempts_max: int = Field(default=3, ge=1, le=20)
    request_deadline_s: float = Field(default=300.0, gt=0)
    # With a Redis URL, deployment health is shared by every replica; without, it is per process.
    redis_url: str | None = Field(default=None, pattern=r"^rediss?://")
    # EWMAs, error window and circuit breaker timings (`[health_policy]` in the config file).
    health_policy: HealthPolicy = Field(default_factory=HealthPolicy)
    # Prepaid accounts: API keys, sign-in challenges, withdrawals (`[accounts]` in the config file).
    accounts: AccountsSettings = Field(default_factory=AccountsSettings)
    # Responses API conversation state: retention and size (`[responses]` in the config file).
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    # Keyless payers: sign-in-with-x and the credit-return policy (`[returning_payers]`).
    returning_payers: ReturningPayersSettings = Field(default_factory=ReturningPayersSettings)
    # The free route preview's rate limit (`[route_preview]` in the config file).
    route_preview: RoutePreviewSettings = Field(default_factory=RoutePreviewSettings)
    # The web dashboard at /dashboard (`[dashboard]` in the config file); the operator signs in to it with
    # admin_token, wallets with an EIP-4361 signature.
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    # Organizations: Stripe top-ups (`[orgs]` in the config file).
    orgs: OrgSettings = Field(default_factory=OrgSettings)

    # The chain watcher books plain token transfers to the settlement wallet as deposits.
    chain_watcher_enabled: bool = True
    chain_watch_confirmations: int = Field(default=3, ge=0)
    chain_watch_poll_interval_s: float = Field(default=2.0, gt=0)
    # Where a watcher with no stored cursor starts; None: at the confirmed head (future transfers only).
    chain_watch_start_block: int | None = Field(default=None, ge=0)

    # A request without max_tokens is quoted, and capped upstream, at this many output tokens.
    default_max_output_tokens: int = Field(default=1024, ge=1)
    # x402 maxTimeoutSeconds: how long a signed authorization may take to reach us.
    payment_validity_s: int = Field(default=120, ge=10)
    settle_receipt_timeout_s: float = Field(default=60.0, gt=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    hold_timeout_s: int = Field(default=900, ge=30)
    upstream_timeout_s: float = Field(default=120.0, gt=0)
    # A stream is relayed for at most this long after its first event, then ended with an error event and
    # charged for what it produced; each write to a streaming client may wait this long for the client to
    # read (one that stops reading is treated as gone, and charged likewise).
    stream_duration_s_max: float = Field(default=300.0, gt=0)
    stream_write_timeout_s: float = Field(default=30.0, gt=0)
    request_body_bytes_max: int = Field(default=4 * 1024 * 1024, ge=1024)
    # How long a client may take to send a request body once its headers arrived (a slow body is refused
    # with 408), and to send the headers of a request on an open connection (aiohttp's keep-alive timeout
    # runs from the connection's start and from each response's end, so it bounds the header read too).
    request_body_read_timeout_s: float = Field(default=30.0, gt=0)
    request_header_read_timeout_s: float = Field(default=75.0, gt=0)
    log_format: Literal["json", "console"] = "json"
    # GET /metrics (Prometheus): served unless disabled; with a token (MEGAROUTER_METRICS_BEARER_TOKEN),
    # only to `Authorization: Bearer <token>`.
    metrics_enabled: bool = True
    metrics_bearer_token: SecretStr | None = None
    # The operator's admin token (MEGAROUTER_ADMIN_TOKEN, never in the file): `Authorization: Bearer <it>`
    # sees every account's analytics, reads the alert history and signs in to the dashboard. None: no
    # operator access over HTTP (admin endpoints answer 403).
    admin_token: SecretStr | None = Field(default=None, min_length=16)
    # Alert outbox, webhooks and detectors (`[alerts]` in the config file).
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    # OpenTelemetry traces go by OTLP/HTTP to `<otlp_endpoint>/v1/traces`; None: no tracing at all.
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://")

    # Test-only crash points (see proxy/faults.py); empty in production.
    fault_injection: frozenset[str] = frozenset()

    @field_validator("assets")
    @classmethod
    def _unique_assets(cls, assets: tuple[AssetSettings, ...]) -> tuple[AssetSettings, ...]:
        addresses = [asset.address.lower() for asset in assets]
        if len(set(addresses)) != len(addresses):
            raise ValueError("assets: each token address may be listed once")
        return assets

    @model_validator(mode="after")
    def _relationships(self) -> Settings:
        # A hold must outlive the slowest request it covers, or it could expire while the upstream still runs.
        if self.hold_timeout_s <= self.upstream_timeout_s + self.settle_receipt_timeout_s:
            raise ValueError("hold_timeout_s must exceed upstream_timeout_s + settle_receipt_timeout_s")
        if self.hold_timeout_s <= self.stream_hold_s_max:
            raise ValueError(
                f"hold_timeout_s ({self.hold_timeout_s}) must exceed the longest a stream may keep its hold, "
                f"{self.stream_hold_s_max:g} s: request_deadline_s + upstream_timeout_s (failover until the "
                "first event) + stream_duration_s_max + stream_write_timeout_s (the closing error event) + "
                "settle_receipt_timeout_s (margin for the charge); else the sweeper could expire a live "
                "stream's hold and the stream would be served free"
            )
        return self

    @property
    def stream_hold_s_max(self) -> float:
        """The longest a streamed request keeps its hold: every phase after the hold has its own bound."""
        return (
            self.request_deadline_s
            + self.upstream_timeout_s
            + self.stream_duration_s_max
            + self.stream_write_timeout_s
            + self.settle_receipt_timeout_s
        )

    @property
    def network(self) -> str:
        """The chain as a CAIP-2 id, as x402 v2 names it."""
        return f"eip155:{self.chain_id}"
