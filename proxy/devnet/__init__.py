"""A local development chain for the demo and the tests: Anvil, our test tokens, funded accounts."""
