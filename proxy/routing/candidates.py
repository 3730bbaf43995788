"""Which catalog deployments serve the same underlying model, and what a model name the caller wrote means.

Providers spell one open-weights model differently: "llama-3.3-70b-versatile" at Groq,
"meta-llama/Llama-3.3-70B-Instruct-Turbo" at Together, "glm-5p3" at Fireworks for "GLM-5.3" at Z.ai.
`canonical_model_key` maps each spelling to one provider-neutral key, so an explicitly named model can
fail over to its other providers first, invisibly to the caller. The rules are deliberately
conservative (a wrong merge would serve a different model): lower-case, drop the vendor path and
hosting suffixes, and write version numbers with dots. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from proxy.catalog import CatalogModel
from proxy.routing.errors import InvalidRoute

__all__ = [
    "canonical_model_key",
    "canonical_model_name",
    "resolve_model_names",
    "resolve_requested_model",
]

# Host-specific packaging that does not change the weights served. "-turbo" alone is NOT here:
# gpt-3.5-turbo and gpt-4-turbo are models of their own; only Together's "-instruct-turbo" is packaging.
_HOSTING_SUFFIXES = (
    "-instruct-turbo",
    "-instruct-lite",
    "-instruct-basic",
    "-instruct",
    "-versatile",
    "-instant",
    "-chat-hf",
    "-hf",
    "-fp8",
    "-it",
    "-maas",
    "-latest",
    "-us",
)
# Vendor prefixes some hosts put in front of the model's own name ("Meta-Llama-3.1-…", "zai-glm-5-3").
_VENDOR_PREFIXES = ("meta-", "zai-")
# "4p7" (Fireworks), "4-5" (Anthropic, Mistral) and "4.5" all mean version 4.5 — but only when the second
# number is not a size ("3-70b" is Llama 3, 70B parameters), so the digits must end the name or a part.
_VERSION_SEPARATOR = re.compile(r"(?<=\d)[-p](?=\d+(?:[-.]|$))")


def canonical_model_name(name: str) -> str:
    """The provider-neutral key of a model name as a caller or a provider writes it."""
    key = name.strip().lower().rsplit("/", 1)[-1]
    for prefix in _VENDOR_PREFIXES:
        key = key.removeprefix(prefix)
    stripped = True
    while stripped:
        stripped = False
        for suffix in _HOSTING_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key, stripped = key[: -len(suffix)], True
    key = _VERSION_SEPARATOR.sub(".", key)
    assert key, f"model name {name!r} has an empty canonical key"
    return key


def canonical_model_key(model: CatalogModel) -> str:
    """The key shared by every deployment of the same underlying model (e.g. llama-3.3-70b)."""
    return canonical_model_name(model.upstream_model)


def resolve_model_names(models: Iterable[CatalogModel], names: Sequence[str]) -> list[list[CatalogModel]]:
    """For each name (a catalog id or a provider-neutral name), the deployments it means, in catalog order.

    A catalog id means exactly that deployment; any other name means every deployment whose canonical
    key equals the name's. Raises `InvalidRoute` for a name that means nothing.
    """
    catalog = list(models)
    by_id = {model.id: model for model in catalog}
    resolved: list[list[CatalogModel]] = []
    for name in names:
        if name in by_id:
            resolved.append([by_id[name]])
            continue
        key = canonical_model_name(name)
        matches = [model for model in catalog if canonical_model_key(model) == key]
        if not matches:
            raise InvalidRoute(f"route.models: unknown model {name!r}", param="route.models")
        resolved.append(matches)
    assert len(resolved) == len(names)
    return resolved


def resolve_requested_model(models: Iterable[CatalogModel], name: str) -> tuple[CatalogModel | None, str]:
    """(the exact deployment when `name` is a catalog id, else None; the canonical key of the model).

    Raises `InvalidRoute` (param "model") when no deployment serves that model.
    """
    catalog = list(models)
    for model in catalog:
        if model.id == name:
            return model, canonical_model_key(model)
    key = canonical_model_name(name)
    if not any(canonical_model_key(model) == key for model in catalog):
        raise InvalidRoute(f"The model '{name}' does not exist", param="model")
    return None, key
