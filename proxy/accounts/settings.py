"""The signing scope of prepaid accounts: the domain, URI and chain id every signed message names."""

from __future__ import annotations

from proxy.accounts.siwe import SiweScope
from proxy.settings import AccountsSettings, Settings

__all__ = ["signing_scope"]


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
