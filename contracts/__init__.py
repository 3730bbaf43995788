"""Solidity sources of MegaRouter's test tokens and their committed compiled artifacts."""
