"""Sign-in challenges and wallet-bound API keys, stored in the proxy's tables.

A key is shown once and stored as its SHA-256: the table alone never lets anyone call the API. Challenges are
consumed by a conditional UPDATE in the same transaction that inserts the key, so one signature yields at
most one key even when sent twice at once.

Challenges are EIP-4361 messages naming the configured scope (proxy/accounts/siwe.py). A submitted message
is parsed and its domain, URI, chain id and version checked first (so a message phished for another site
is refused with a code that says so), then compared byte for byte with the stored challenge. The table is
bounded: expired rows are purged on every issue, each address keeps its newest few, and when the whole
table is full a new challenge is refused with 429 and Retry-After until the oldest expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger import chart
from proxy.accounts.errors import ChallengeInvalid, SignatureMismatch
from proxy.accounts.signatures import challenge_message, recover_signer
from proxy.accounts.siwe import SiweScope, check_siwe_scope, parse_siwe
from proxy.db.tables import account_api_keys, account_challenges
from proxy.errors import AuthenticationFailed, InvalidRequest, RateLimited
from proxy.settings import AccountsSettings

__all__ = ["ApiKeyInfo", "ApiKeys", "Challenge", "IssuedApiKey", "hash_api_key"]

_KEY_PREFIX_DISPLAY_CHARS = 8


class Challenge(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    nonce: str
    message: str
    issued_at_unix_s: int
    expires_at_unix_s: int


class ApiKeyInfo(BaseModel):
    """What may be shown about a key after it was issued: never the key itself."""

    model_config = ConfigDict(frozen=True)

    id: int
    wallet: str
    credit_account: str
    prefix: str
    name: str | None
    route_strategy: str | None
    created_at_unix_s: int
    last_used_at_unix_s: int | None
    revoked_at_unix_s: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_unix_s is not None


class IssuedApiKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    info: ApiKeyInfo


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_KEY_BY_SHA256 = sa.select(account_api_keys).where(
    account_api_keys.c.key_sha256 == sa.bindparam("key_sha256")
)
_TOUCH_KEY = (
    account_api_keys.update()
    .where(account_api_keys.c.id == sa.bindparam("key_id"))
    .values(last_used_at_unix_s=sa.bindparam("now"))
)


def _info(row: sa.RowMapping) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        wallet=row["wallet"],
        credit_account=row["credit_account"],
        prefix=row["key_prefix"],
        name=row["name"],
        route_strategy=row["route_strategy"],
        created_at_unix_s=row["created_at_unix_s"],
        last_used_at_unix_s=row["last_used_at_unix_s"],
        revoked_at_unix_s=row["revoked_at_unix_s"],
    )


class ApiKeys:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: AccountsSettings,
        *,
        scope: SiweScope,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._scope = scope
        self._clock_unix_s = clock_unix_s
        # Makes the pending-challenge caps exact within a process (replicas may each add one at once).
        self._issue_lock = asyncio.Lock()
        # Live keys by SHA-256, with when they were read (settings.api_key_cache_ttl_s; see `authenticate`).
        self._cache: dict[str, tuple[ApiKeyInfo, float]] = {}
        # Bumped by every revoke: a read that began before one is not cached (it may predate the UPDATE).
        self._revocations = 0

    @property
    def scope(self) -> SiweScope:
        return self._scope

    def _now(self) -> int:
        return int(self._clock_unix_s())

    async def issue_challenge(self, address: str) -> Challenge:
        """A fresh sign-in message for `address`, naming the configured scope (never the caller's Host)."""
        now = self._now()
        nonce = secrets.token_hex(16)
        expires_at_unix_s = now + self._settings.challenge_validity_s
        challenge = Challenge(
            address=address.lower(),
            nonce=nonce,
            issued_at_unix_s=now,
            expires_at_unix_s=expires_at_unix_s,
            message=challenge_message(
                scope=self._scope,
                address=address,
                nonce=nonce,
                issued_at_unix_s=now,
                expires_at_unix_s=expires_at_unix_s,
            ),
        )
        async with self._issue_lock, self._engine.begin() as conn:
            await self._make_room(conn, address=challenge.address, now_unix_s=now)
            await conn.execute(
                account_challenges.insert().values(
                    nonce=nonce,
                    address=challenge.address,
                    message=challenge.message,
                    issued_at_unix_s=now,
                    expires_at_unix_s=expires_at_unix_s,
                    used_at_unix_s=None,
                )
            )
        return challenge

    async def _make_room(self, conn: AsyncConnection, *, address: str, now_unix_s: int) -> None:
        """Purges expired challenges, drops the address's oldest beyond its cap, or refuses (429) if full."""
        table = account_challenges
        # Expired challenges are worthless; dropping them here keeps the table small without a sweeper.
        await conn.execute(table.delete().where(table.c.expires_at_unix_s <= now_unix_s))
        per_address_max = self._settings.challenges_per_address_max
        newest_first = sa.select(table.c.id).where(table.c.address == address).order_by(table.c.id.desc())
        mine = (await conn.execute(newest_first)).scalars().all()
        stale_ids = list(mine[per_address_max - 1 :])  # Keep the newest max-1: with the new one, max.
        if stale_ids:
            await conn.execute(table.delete().where(table.c.id.in_(stale_ids)))
        pending, oldest_expiry_unix_s = (
            await conn.execute(sa.select(sa.func.count(), sa.func.min(table.c.expires_at_unix_s)))
        ).one()
        if pending >= self._settings.challenges_pending_max:
            retry_after_s = max(1, int(oldest_expiry_unix_s) - now_unix_s)
            raise RateLimited(
                "too many sign-in challenges are pending; try again later",
                code="too_many_challenges",
                headers={"Retry-After": str(retry_after_s)},
            )
        assert pending < self._settings.challenges_pending_max

    async def create_key(
        self,
        *,
        address: str,
        message: str,
        signature: str,
        name: str | None,
        route_strategy: str | None = None,
    ) -> IssuedApiKey:
        """Checks the signed challenge and issues a key. A refusal leaves the challenge usable."""
        wallet = address.lower()
        now = self._now()
        terms = parse_siwe(message)
        check_siwe_scope(terms, self._scope)
        row = await self._challenge_row(terms.nonce)
        self._check_challenge(row, message=message, wallet=wallet, now_unix_s=now)
        signer = recover_signer(message, signature)
        if signer != wallet:
            raise SignatureMismatch(f"signature was made by {signer}, not by {wallet}", param="signature")
        key = self._settings.api_key_prefix + secrets.token_urlsafe(self._settings.api_key_random_bytes)
        async with self._engine.begin() as conn:
            consumed = await conn.execute(
                account_challenges.update()
                .where(account_challenges.c.id == row["id"], account_challenges.c.used_at_unix_s.is_(None))
                .values(used_at_unix_s=now)
            )
            if consumed.rowcount != 1:
                raise ChallengeInvalid(
                    "this challenge was already used", code="challenge_used", param="message"
                )
            count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(account_api_keys)
                    .where(
                        account_api_keys.c.wallet == wallet, account_api_keys.c.revoked_at_unix_s.is_(None)
                    )
                )
            ).scalar_one()
            if count >= self._settings.api_keys_per_wallet_max:
                raise InvalidRequest(
                    f"a wallet may hold at most {self._settings.api_keys_per_wallet_max} "
                    "active keys; revoke one first",
                    code="too_many_api_keys",
                )
            result = await conn.execute(
                account_api_keys.insert().values(
                    wallet=wallet,
                    credit_account=chart.credit_wallet(wallet),
                    key_sha256=hash_api_key(key),
                    key_prefix=key[: len(self._settings.api_key_prefix) + _KEY_PREFIX_DISPLAY_CHARS],
                    name=name,
                    route_strategy=route_strategy,
                    created_at_unix_s=now,
                    last_used_at_unix_s=None,
                    revoked_at_unix_s=None,
                )
            )
            assert result.inserted_primary_key is not None
            key_id = result.inserted_primary_key[0]
            stored = (
                (await conn.execute(sa.select(account_api_keys).where(account_api_keys.c.id == key_id)))
                .mappings()
                .one()
            )
        return IssuedApiKey(key=key, info=_info(stored))

    async def sign_in(self, *, address: str, message: str, signature: str) -> str:
        """Checks a signed challenge like `create_key` and uses it up, minting nothing; returns the wallet
        (lower case). The dashboard signs a wallet in this way."""
        wallet = address.lower()
        now = self._now()
        terms = parse_siwe(message)
        check_siwe_scope(terms, self._scope)
        row = await self._challenge_row(terms.nonce)
        self._check_challenge(row, message=message, wallet=wallet, now_unix_s=now)
        signer = recover_signer(message, signature)
        if signer != wallet:
            raise SignatureMismatch(f"signature was made by {signer}, not by {wallet}", param="signature")
        async with self._engine.begin() as conn:
            consumed = await conn.execute(
                account_challenges.update()
                .where(account_challenges.c.id == row["id"], account_challenges.c.used_at_unix_s.is_(None))
                .values(used_at_unix_s=now)
            )
        if consumed.rowcount != 1:
            raise ChallengeInvalid("this challenge was already used", code="challenge_used", param="message")
        return wallet

    async def _challenge_row(self, nonce: str) -> sa.RowMapping:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(account_challenges).where(account_challenges.c.nonce == nonce)))
                .mappings()
                .first()
            )
        if row is None:
            raise ChallengeInvalid(
                "no challenge with this nonce was issued; ask POST /v1/auth/challenge",
                code="challenge_not_found",
                param="message",
            )
        return row

    @staticmethod
    def _check_challenge(row: sa.RowMapping, *, message: str, wallet: str, now_unix_s: int) -> None:
        """EIP-4361 checks against the stored challenge: ours byte for byte, unused, within its times."""
        if row["message"] != message or row["address"] != wallet:
            raise ChallengeInvalid(
                "message is not the challenge issued to this address",
                code="challenge_mismatch",
                param="message",
            )
        if row["used_at_unix_s"] is not None:
            raise ChallengeInvalid("this challenge was already used", code="challenge_used", param="message")
        if row["expires_at_unix_s"] <= now_unix_s:
            raise ChallengeInvalid("this challenge has expired", code="challenge_expired", param="message")
        if row["issued_at_unix_s"] > now_unix_s:
            raise ChallengeInvalid(
                "this challenge is not valid yet", code="challenge_not_yet_valid", param="message"
            )

    async def authenticate(self, key: str) -> ApiKeyInfo:
        """The live key's info (last use refreshed), or AuthenticationFailed.

        A live key read less than `api_key_cache_ttl_s` ago is answered from memory: a revoke made by this
        process drops it at once (`revoke`), one made by another replica is seen within the TTL. Unknown
        and revoked keys are never cached (every refusal reads the database).
        """
        key_sha256 = hash_api_key(key)
        now_s = self._clock_unix_s()
        cached = self._cache.get(key_sha256)
        revocations = self._revocations
        if cached is not None and now_s - cached[1] < self._settings.api_key_cache_ttl_s:
            info, read_at_s = cached
        else:
            info, read_at_s = await self._read_live_key(key_sha256), now_s
        now = int(now_s)
        last = info.last_used_at_unix_s
        if last is None or now - last >= self._settings.key_last_used_resolution_s:
            async with self._engine.begin() as conn:
                await conn.execute(_TOUCH_KEY, {"key_id": info.id, "now": now})
            info = info.model_copy(update={"last_used_at_unix_s": now})
        if (cached is None or cached[0] is not info) and revocations == self._revocations:
            self._remember(key_sha256, info, read_at_s=read_at_s)
        return info

    async def _read_live_key(self, key_sha256: str) -> ApiKeyInfo:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_KEY_BY_SHA256, {"key_sha256": key_sha256})).mappings().first()
        if row is None:
            raise AuthenticationFailed("Incorrect API key provided", code="invalid_api_key")
        info = _info(row)
        if info.revoked:
            self._cache.pop(key_sha256, None)
            raise AuthenticationFailed("This API key has been revoked", code="api_key_revoked")
        return info

    def _remember(self, key_sha256: str, info: ApiKeyInfo, *, read_at_s: float) -> None:
        if self._settings.api_key_cache_ttl_s <= 0:
            return
        self._cache.pop(key_sha256, None)
        while len(self._cache) >= self._settings.api_key_cache_entries_max:
            del self._cache[next(iter(self._cache))]  # The oldest read goes first (insertion order).
        self._cache[key_sha256] = (info, read_at_s)

    async def list_keys(self, wallet: str) -> list[ApiKeyInfo]:
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(account_api_keys)
                        .where(account_api_keys.c.wallet == wallet.lower())
                        .order_by(account_api_keys.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [_info(row) for row in rows]

    async def revoke(self, key_id: int, *, wallet: str) -> ApiKeyInfo | None:
        """Revokes the wallet's key (idempotent); None when the wallet has no key with this id. This
        process stops accepting it at once; other replicas within `api_key_cache_ttl_s`."""
        self._forget(key_id)
        async with self._engine.begin() as conn:
            await conn.execute(
                account_api_keys.update()
                .where(
                    account_api_keys.c.id == key_id,
                    account_api_keys.c.wallet == wallet.lower(),
                    account_api_keys.c.revoked_at_unix_s.is_(None),
                )
                .values(revoked_at_unix_s=self._now())
            )
            row = (
                (
                    await conn.execute(
                        sa.select(account_api_keys).where(
                            account_api_keys.c.id == key_id, account_api_keys.c.wallet == wallet.lower()
                        )
                    )
                )
                .mappings()
                .first()
            )
        self._forget(key_id)  # Again: an authenticate may have cached it while the UPDATE ran.
        return None if row is None else _info(row)

    def _forget(self, key_id: int) -> None:
        self._revocations += 1
        for key_sha256 in [k for k, (info, _) in self._cache.items() if info.id == key_id]:
            del self._cache[key_sha256]
