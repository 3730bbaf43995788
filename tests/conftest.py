"""Shared fixtures. Each fixture module has one owner and one kind of resource."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.chain",
    "tests.fixtures.ledger",
    "tests.fixtures.providers",
    "tests.fixtures.app",
    "tests.fixtures.router",
]
