"""Settings of prepaid wallet accounts, with defaults, until they join proxy.settings.Settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AccountsSettings"]


class AccountsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Shown in signed messages; None uses the request's Host, as EIP-4361 does, so a phished signature
    # for another site names that site.
    domain: str | None = Field(default=None, min_length=1, max_length=255)
    challenge_validity_s: int = Field(default=300, ge=10, le=3600)
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
