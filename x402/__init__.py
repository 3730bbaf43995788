"""The x402 payment protocol: message models, header codec, EIP-3009 signing, verification and settlement.

No HTTP server and no database here; this package must not import `proxy` or `ledger`.
"""
