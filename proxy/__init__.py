"""MegaRouter's aiohttp service: the OpenAI-compatible API, the payment gate, routing and provider adapters.

It composes the two libraries, `x402` (payment protocol) and `ledger` (accounting); neither imports it.
"""
