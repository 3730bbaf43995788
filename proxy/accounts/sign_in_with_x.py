"""Keyless wallets proving themselves with x402's `sign-in-with-x` on a paid request: the terms each 402
offers, and the check of a proof, each nonce accepted once.

The scope (domain, URI, chain) is the one key sign-in uses (proxy/accounts/settings.py: configuration
only, never a request's Host). A proof is accepted once: its nonce goes into `siwx_nonces` under a primary
key, so a replayed header is refused on every replica; a nonce is remembered until the proof is too old to
be accepted anyway, then purged. Protocol checks live in x402/siwx.py (pure).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.accounts.siwe import SiweScope
from proxy.db.tables import siwx_nonces
from proxy.settings import ReturningPayersSettings
from x402.siwx import (
    SiwxInvalid,
    SiwxScope,
    decode_siwx_header,
    siwx_declaration,
    siwx_expires_at_unix_s,
    verify_siwx,
)

__all__ = ["SIGN_IN_STATEMENT", "WalletSignIns"]

SIGN_IN_STATEMENT = "Sign in to pay for this request from your MegaRouter credit."


class WalletSignIns:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        scope: SiweScope,
        settings: ReturningPayersSettings,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._scope = SiwxScope(
            domain=scope.domain,
            uri=scope.uri,
            chain_id=scope.chain_id,
            validity_s=settings.sign_in_validity_s,
        )
        self._clock_unix_s = clock_unix_s

    @property
    def scope(self) -> SiwxScope:
        return self._scope

    def declaration(self) -> dict[str, Any]:
        """The `sign-in-with-x` entry of a 402's extensions, with a fresh nonce."""
        return siwx_declaration(
            scope=self._scope,
            nonce=secrets.token_hex(16),
            issued_at_unix_s=int(self._clock_unix_s()),
            statement=SIGN_IN_STATEMENT,
        )

    async def sign_in(self, header_value: str) -> str:
        """The lower-case address the proof signs in; raises InvalidPayload or SiwxInvalid (reuse too)."""
        payload = decode_siwx_header(header_value)
        now_unix_s = int(self._clock_unix_s())
        address = verify_siwx(payload, scope=self._scope, now_unix_s=now_unix_s)
        expires_at_unix_s = siwx_expires_at_unix_s(payload, scope=self._scope)
        assert expires_at_unix_s >= now_unix_s
        async with self._engine.begin() as conn:
            # Expired nonces can never be replayed (the proof is too old): dropping them bounds the table.
            await conn.execute(siwx_nonces.delete().where(siwx_nonces.c.expires_at_unix_s < now_unix_s))
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    siwx_nonces.insert().values(
                        nonce=payload.nonce, address=address.lower(), expires_at_unix_s=expires_at_unix_s
                    )
                )
        except IntegrityError as error:
            raise SiwxInvalid("this sign-in proof was already used", reason="invalid_siwx_nonce") from error
        return address.lower()

    async def nonces_remembered(self) -> int:
        async with self._engine.connect() as conn:
            count: int = (
                await conn.execute(sa.select(sa.func.count()).select_from(siwx_nonces))
            ).scalar_one()
        return count
