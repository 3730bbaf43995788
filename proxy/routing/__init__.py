"""Routing: judging a request (classifier), ranking deployments (strategies, health), offline evaluation.

Modules here import nothing from the payment or ledger side; the proxy hands them plain request data.
"""
