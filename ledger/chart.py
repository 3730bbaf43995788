"""Chart of accounts: the names the proxy books under, built in one place so spelling never drifts.

Names are `kind:part:part`. Addresses are lower-cased so the checksummed and plain spellings of one wallet
are one account. Parts must not contain ':' (it would make a name ambiguous).
"""

from __future__ import annotations

import re

from ledger.types import AccountFlags, AccountType

__all__ = [
    "EQUITY_EXTERNAL",
    "EXPENSE_GAS",
    "UNIT_NANO_USD",
    "AccountSpec",
    "cash",
    "credit_account",
    "credit_wallet",
    "in_transit",
    "provider_payable",
    "spec_for",
]

UNIT_NANO_USD = "nano_usd"
EXPENSE_GAS = "expense:gas"
EQUITY_EXTERNAL = "equity:external"


def _part(value: str) -> str:
    assert value, "an account name part must not be empty"
    assert ":" not in value, f"an account name part must not contain ':': {value!r}"
    return value


_CAIP2 = re.compile(r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$")


def _network(network: str) -> str:
    """A CAIP-2 chain id such as `eip155:8453`: the one name part allowed its own colon, as DESIGN §5 names it."""
    assert _CAIP2.fullmatch(network), f"not a CAIP-2 network id: {network!r}"
    return network


def _address(address: str) -> str:
    lowered = _part(address).lower()
    assert lowered.startswith("0x"), f"not an EVM address: {address!r}"
    assert len(lowered) == 42, f"not an EVM address: {address!r}"
    return lowered


def cash(network: str, asset: str, address: str) -> str:
    """Tokens held in a settlement wallet (asset); tied out against the chain."""
    return f"cash:{_network(network)}:{_address(asset)}:{_address(address)}"


def in_transit(network: str, asset: str) -> str:
    """Settlement sent but not final yet (asset); drains to zero."""
    return f"in_transit:{_network(network)}:{_address(asset)}"


def credit_wallet(address: str) -> str:
    """Prepaid credit of a wallet (liability, must not go negative)."""
    return f"credit:wallet:{_address(address)}"


def credit_account(account_id: str) -> str:
    """Prepaid credit of an operator-defined account (liability, must not go negative)."""
    return f"credit:account:{_part(account_id)}"


def provider_payable(provider: str) -> str:
    """What is owed to an upstream provider (liability)."""
    return f"provider_payable:{_part(provider)}"


class AccountSpec:
    """Type and flags the chart assigns to an account name."""

    __slots__ = ("flags", "type")

    def __init__(self, type: AccountType, flags: AccountFlags) -> None:
        self.type = type
        self.flags = flags

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccountSpec) and (self.type, self.flags) == (other.type, other.flags)

    def __hash__(self) -> int:
        return hash((self.type, self.flags))

    def __repr__(self) -> str:
        return f"AccountSpec(type={self.type!r}, flags={self.flags!r})"


def spec_for(name: str) -> AccountSpec:
    """The type and flags of a chart account, from its name's first part.

    Customer credit must never go negative; everything else may (a negative cash account is a break that
    reconciliation reports, not something the ledger can refuse).
    """
    kind = name.split(":", 1)[0]
    if kind in ("cash", "in_transit"):
        return AccountSpec(AccountType.ASSET, AccountFlags.NONE)
    if kind == "credit":
        return AccountSpec(AccountType.LIABILITY, AccountFlags.MUST_NOT_GO_NEGATIVE)
    if kind == "provider_payable":
        return AccountSpec(AccountType.LIABILITY, AccountFlags.NONE)
    if kind == "expense":
        return AccountSpec(AccountType.EXPENSE, AccountFlags.NONE)
    if kind == "equity":
        return AccountSpec(AccountType.EQUITY, AccountFlags.NONE)
    if kind == "income":
        return AccountSpec(AccountType.INCOME, AccountFlags.NONE)
    raise ValueError(f"account name outside the chart of accounts: {name!r}")
