"""x402 payments in the proxy: the offer (402), accepting a payment, settlement intents, booking, recovery."""
