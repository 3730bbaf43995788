"""Errors of the model catalog.

CatalogError                 root; `code` is stable and safe to show to an operator or caller
├── UnknownModel             a model id is not in the catalog (HTTP 404 `model_not_found` upstream)
├── UnknownProvider          a provider name has no known wire API (openai/anthropic/gemini)
├── CatalogDataError         the packaged catalog.json is corrupt (a build bug, never user input)
└── CatalogOverrideError     an operator override file is malformed, names a bad field, or has an
                             inexact or negative price; the message names the model and the field
"""

from __future__ import annotations

__all__ = ["CatalogDataError", "CatalogError", "CatalogOverrideError", "UnknownModel", "UnknownProvider"]


class CatalogError(Exception):
    """Root of the catalog's expected failures."""

    code = "catalog_error"


class UnknownModel(CatalogError, KeyError):
    """The requested model id is not in the catalog; `model_id` says which."""

    code = "model_not_found"

    def __init__(self, model_id: str) -> None:
        super().__init__(f"unknown model {model_id!r}")
        self.model_id = model_id

    def __str__(self) -> str:
        # KeyError would otherwise quote the whole message a second time.
        return str(self.args[0])


class UnknownProvider(CatalogError):
    """No API kind is known for this provider; an override must then state `api_kind` itself."""

    code = "provider_unknown"

    def __init__(self, provider: str) -> None:
        super().__init__(f"unknown provider {provider!r}: no API kind known, state api_kind explicitly")
        self.provider = provider


class CatalogDataError(CatalogError):
    """The packaged catalog file does not validate: regenerate it with scripts/build_catalog.py."""

    code = "catalog_data_invalid"


class CatalogOverrideError(CatalogError):
    """An operator override is invalid; the message names the file, the model id and the field."""

    code = "catalog_override_invalid"
