"""Settings of prepaid wallet accounts, with defaults, until they join proxy.settings.Settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from proxy.accounts.siwe import SiweScope
from proxy.settings import Settings

__all__ = ["AccountsSettings", "signing_scope"]


class AccountsSettings(BaseModel):
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


def signing_scope(settings: Settings, accounts: AccountsSettings) -> SiweScope:
    """The domain, URI and chain id every signed message must name: configuration only, never a request."""
    base_url = settings.public_base_url or _listen_url(settings)
    derived = SiweScope.from_base_url(base_url, chain_id=settings.chain_id)
    return SiweScope(
        domain=accounts.domain or derived.domain,
        uri=accounts.uri or derived.uri,
        chain_id=settings.chain_id,
    )


def _listen_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"
