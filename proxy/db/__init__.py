"""The proxy's own tables (payments, usage), beside the ledger's in the same database."""
