"""Organizations: a tree of units, members with roles, org keys, budgets enforced in the ledger, audit.

Layer: below `proxy.accounts` (a key's principal may name its organization) and above `proxy.payments`.
It must not import `proxy.api`, `proxy.serving` or anything above them.
"""
