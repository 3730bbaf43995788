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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from proxy.catalog import CatalogModel
from proxy.routing.errors import InvalidRoute
from proxy.routing.requirements import StaticPools

__all__ = [
    "ModelIndex",
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
    # Empty for a name such as "" or "openai/": it then matches no deployment (a caller's 404, not a bug).
    return _VERSION_SEPARATOR.sub(".", key)


def canonical_model_key(model: CatalogModel) -> str:
    """The key shared by every deployment of the same underlying model (e.g. llama-3.3-70b)."""
    key = canonical_model_name(model.upstream_model)
    assert key, f"catalog model {model.id!r} has an empty canonical key"
    return key


@dataclass(frozen=True)
class ModelIndex:
    """The deployments in catalog order with their canonical keys, computed once per catalog.

    Routing compares every deployment's key with the requested one several times per request; the app
    builds this index once at start (the catalog is immutable) so a request does not redo that string work.
    """

    models: tuple[CatalogModel, ...]
    by_id: Mapping[str, CatalogModel]
    key_by_id: Mapping[str, str]
    by_key: Mapping[str, tuple[CatalogModel, ...]]
    # Request shapes' size-independent filtering over `models` (requirements.filter_deployments).
    static_pools: StaticPools = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, models: Iterable[CatalogModel]) -> ModelIndex:
        ordered = tuple(models)
        key_by_id = {model.id: canonical_model_key(model) for model in ordered}
        by_key: dict[str, list[CatalogModel]] = {}
        for model in ordered:
            by_key.setdefault(key_by_id[model.id], []).append(model)
        assert len(key_by_id) == len(ordered), "catalog ids are unique"
        return cls(
            models=ordered,
            by_id=MappingProxyType({model.id: model for model in ordered}),
            key_by_id=MappingProxyType(key_by_id),
            by_key=MappingProxyType({key: tuple(group) for key, group in by_key.items()}),
        )

    def key(self, model: CatalogModel) -> str:
        """`canonical_model_key(model)`, precomputed (a model outside the index is computed afresh)."""
        key = self.key_by_id.get(model.id)
        return canonical_model_key(model) if key is None else key

    def same_model(self, key: str) -> tuple[CatalogModel, ...]:
        """Every deployment whose canonical key is `key`, in catalog order."""
        return self.by_key.get(key, ())


def _index(models: Iterable[CatalogModel] | ModelIndex) -> ModelIndex:
    return models if isinstance(models, ModelIndex) else ModelIndex.build(models)


def resolve_model_names(
    models: Iterable[CatalogModel] | ModelIndex, names: Sequence[str]
) -> list[list[CatalogModel]]:
    """For each name (a catalog id or a provider-neutral name), the deployments it means, in catalog order.

    A catalog id means exactly that deployment; any other name means every deployment whose canonical
    key equals the name's. Raises `InvalidRoute` for a name that means nothing.
    """
    index = _index(models)
    resolved: list[list[CatalogModel]] = []
    for name in names:
        model = index.by_id.get(name)
        if model is not None:
            resolved.append([model])
            continue
        matches = list(index.same_model(canonical_model_name(name)))
        if not matches:
            raise InvalidRoute(f"route.models: unknown model {name!r}", param="route.models")
        resolved.append(matches)
    assert len(resolved) == len(names)
    return resolved


def resolve_requested_model(
    models: Iterable[CatalogModel] | ModelIndex, name: str
) -> tuple[CatalogModel | None, str]:
    """(the exact deployment when `name` is a catalog id, else None; the canonical key of the model).

    Raises `InvalidRoute` (param "model") when no deployment serves that model.
    """
    index = _index(models)
    model = index.by_id.get(name)
    if model is not None:
        return model, index.key(model)
    key = canonical_model_name(name)
    if not index.same_model(key):
        raise InvalidRoute(f"The model '{name}' does not exist", param="model")
    return None, key
