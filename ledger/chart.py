"""Chart of accounts: the names the proxy books under, built in one place so spelling never drifts.

Names are `kind:part:part`. Addresses are lower-cased so the checksummed and plain spellings of one wallet
are one account. Parts must not contain ':' (it would make a name ambiguous), except the network, which may be
a CAIP-2 id such as `eip155:8453`.
"""

from __future__ import annotations

from ledger.types import AccountFlags, AccountType

__all__ = [
    "EQUITY_EXTERNAL",
    "EXPENSE_GAS",
    "EXPENSE_USAGE_OVERAGE",
    "NATIVE_ASSET",
    "UNIT_NANO_USD",
    "UNIT_WEI",
    "AccountSpec",
    "cash",
    "credit_account",
    "credit_wallet",
    "gas_expense",
    "in_transit",
    "native_cash",
    "provider_payable",
    "spec_for",
    "unit_for",
    "upto_loss_expense",
    "usage_overage_expense",
]

UNIT_NANO_USD = "nano_usd"
# A chain's native coin (gas) is counted in its smallest unit, apart from the stablecoins' nano-USD.
UNIT_WEI = "wei"
# The usual stand-in address for a chain's native coin, so native cash fits the cash naming scheme.
NATIVE_ASSET = "0x0000000000000000000000000000000000000000"
EXPENSE_GAS = "expense:gas"
EXPENSE_USAGE_OVERAGE = "expense:usage_overage"
EXPENSE_UPTO_LOSS = "expense:x402_upto_loss"
EQUITY_EXTERNAL = "equity:external"


def _part(value: str) -> str:
    assert value, "an account name part must not be empty"
    assert ":" not in value, f"an account name part must not contain ':': {value!r}"
    return value


def _address(address: str) -> str:
    lowered = _part(address).lower()
    assert lowered.startswith("0x"), f"not an EVM address: {address!r}"
    assert len(lowered) == 42, f"not an EVM address: {address!r}"
    return lowered


def _network(network: str) -> str:
    """A CAIP-2 id (`eip155:8453`, one ':') or an x402 v1 name (`base-sepolia`). Addresses follow it at fixed
    positions from the end, so the one colon inside a CAIP-2 id keeps names unambiguous."""
    parts = network.split(":")
    assert len(parts) <= 2, f"a network is namespace:reference at most: {network!r}"
    for part in parts:
        _part(part)
    return network


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


def usage_overage_expense(provider: str) -> str:
    """What a provider billed beyond the quote the caller was held for (expense, nano-USD): the operator
    owes it to the provider but could not charge it on."""
    return f"{EXPENSE_USAGE_OVERAGE}:{_part(provider)}"


def upto_loss_expense(network: str) -> str:
    """Served x402 `upto` requests whose settlement failed afterwards (expense, nano-USD): the payer withdrew
    its allowance or balance, or invalidated its nonce, between verification and settlement."""
    return f"{EXPENSE_UPTO_LOSS}:{_network(network)}"


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


def gas_expense(network: str) -> str:
    """Gas paid on one chain (expense, in wei): `expense:gas:<network>`."""
    return f"{EXPENSE_GAS}:{_network(network)}"


def native_cash(network: str, address: str) -> str:
    """A wallet's native coin on one chain (asset, in wei): gas is paid from it."""
    return cash(network, NATIVE_ASSET, address)


def unit_for(name: str) -> str:
    """The unit an account counts in: wei for gas and native cash, nano-USD for everything else."""
    if name.startswith(f"{EXPENSE_GAS}:") or (name.startswith("cash:") and f":{NATIVE_ASSET}:" in name):
        return UNIT_WEI
    return UNIT_NANO_USD


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
