"""The chain beyond x402 settlement: plain token transfers, the deposit watcher, and reconciliation of the
ledger against the chain. Above payments and accounts, whose records it reads.
"""
