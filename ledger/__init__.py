"""Double-entry accounting: accounts, balanced transactions, holds, balances, idempotency, reconciliation.

No HTTP and no chain here; this package must not import `proxy` or `x402`.
"""
