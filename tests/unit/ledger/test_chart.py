"""Chart of accounts: one spelling per name (lower-case addresses), mapped to the right type and flags."""

from __future__ import annotations

import pytest

from ledger import chart
from ledger.types import AccountFlags, AccountType

ADDRESS = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"
ASSET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_names() -> None:
    lower = ADDRESS.lower()
    assert chart.cash("eip155:8453", ASSET, ADDRESS) == f"cash:eip155:8453:{ASSET.lower()}:{lower}"
    assert chart.in_transit("eip155:8453", ASSET) == f"in_transit:eip155:8453:{ASSET.lower()}"
    assert chart.credit_wallet(ADDRESS) == f"credit:wallet:{lower}"
    assert chart.credit_wallet(ADDRESS) == chart.credit_wallet(lower)
    assert chart.credit_account("42") == "credit:account:42"
    assert chart.provider_payable("openai") == "provider_payable:openai"
    assert chart.EXPENSE_GAS == "expense:gas"
    assert chart.EQUITY_EXTERNAL == "equity:external"


def test_parts_with_colons_and_bad_addresses_are_refused() -> None:
    with pytest.raises(AssertionError):
        chart.credit_account("a:b")
    with pytest.raises(AssertionError):
        chart.credit_wallet("0x1234")


@pytest.mark.parametrize(
    ("name", "account_type", "flags"),
    [
        (chart.credit_wallet(ADDRESS), AccountType.LIABILITY, AccountFlags.MUST_NOT_GO_NEGATIVE),
        (chart.credit_account("7"), AccountType.LIABILITY, AccountFlags.MUST_NOT_GO_NEGATIVE),
        (chart.provider_payable("anthropic"), AccountType.LIABILITY, AccountFlags.NONE),
        (chart.cash("eip155:1", ASSET, ADDRESS), AccountType.ASSET, AccountFlags.NONE),
        (chart.in_transit("eip155:1", ASSET), AccountType.ASSET, AccountFlags.NONE),
        (chart.EXPENSE_GAS, AccountType.EXPENSE, AccountFlags.NONE),
        (chart.EQUITY_EXTERNAL, AccountType.EQUITY, AccountFlags.NONE),
    ],
)
def test_spec_for(name: str, account_type: AccountType, flags: AccountFlags) -> None:
    assert chart.spec_for(name) == chart.AccountSpec(account_type, flags)


def test_spec_for_unknown_kind() -> None:
    with pytest.raises(ValueError, match="outside the chart"):
        chart.spec_for("misc:thing")


def test_gas_and_native_cash_count_in_wei_and_everything_else_in_nano_usd() -> None:
    wallet = "0x" + "ab" * 20
    assert chart.gas_expense("eip155:8453") == "expense:gas:eip155:8453"
    assert chart.unit_for(chart.gas_expense("eip155:8453")) == chart.UNIT_WEI
    assert chart.unit_for(chart.native_cash("eip155:8453", wallet)) == chart.UNIT_WEI
    assert chart.unit_for(chart.cash("eip155:8453", "0x" + "cd" * 20, wallet)) == chart.UNIT_NANO_USD
    assert chart.unit_for(chart.credit_wallet(wallet)) == chart.UNIT_NANO_USD
