"""The in-memory catalog: lookup by id, iteration, providers, and the packaged data's provenance.

`load_catalog()` reads the packaged proxy/catalog/catalog.json (built by scripts/build_catalog.py)
and applies an optional operator override file (see proxy/catalog/overrides.py). File reads are
small and happen once at start-up, before the event loop serves requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import pydantic

from proxy.catalog.errors import CatalogDataError, UnknownModel
from proxy.catalog.models import CatalogFile, CatalogModel, CatalogSource
from proxy.catalog.overrides import apply_overrides, read_overrides

__all__ = ["Catalog", "load_catalog", "read_packaged_catalog_file"]

_PACKAGED_CATALOG_NAME = "catalog.json"


class Catalog:
    """An immutable set of `CatalogModel`s keyed by id, with the version and sources it came from."""

    def __init__(
        self,
        models: tuple[CatalogModel, ...],
        *,
        version: str,
        sources: tuple[CatalogSource, ...],
        generated_at: str,
    ) -> None:
        by_id: dict[str, CatalogModel] = {}
        for model in models:
            if model.id in by_id:
                raise CatalogDataError(f"duplicate model id {model.id!r}")
            by_id[model.id] = model
        assert len(by_id) == len(models)
        self._by_id: Mapping[str, CatalogModel] = MappingProxyType(by_id)
        self.version = version
        self.sources = sources
        self.generated_at = generated_at

    @property
    def source(self) -> str:
        """One line naming the data sources and versions, for logs and `/v1/models` metadata."""
        return "; ".join(f"{s.name} {s.version} ({s.licence})" for s in self.sources)

    def get(self, model_id: str) -> CatalogModel:
        """Return the model with this id; raise `UnknownModel` (code `model_not_found`) otherwise."""
        model = self._by_id.get(model_id)
        if model is None:
            raise UnknownModel(model_id)
        return model

    def find(self, model_id: str) -> CatalogModel | None:
        """Return the model with this id, or None."""
        return self._by_id.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._by_id

    def __iter__(self) -> Iterator[CatalogModel]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> tuple[str, ...]:
        """All model ids, in catalog order."""
        return tuple(self._by_id)

    def providers(self) -> tuple[str, ...]:
        """Distinct provider names, sorted."""
        return tuple(sorted({model.provider for model in self._by_id.values()}))

    def by_provider(self, provider: str) -> tuple[CatalogModel, ...]:
        """Models served by one provider, in catalog order."""
        return tuple(model for model in self._by_id.values() if model.provider == provider)


def read_packaged_catalog_file() -> CatalogFile:
    """Parse the packaged catalog.json; a failure is a build bug, reported as `CatalogDataError`."""
    text = resources.files("proxy.catalog").joinpath(_PACKAGED_CATALOG_NAME).read_text(encoding="utf-8")
    try:
        catalog_file = CatalogFile.model_validate_json(text)
    except pydantic.ValidationError as error:
        raise CatalogDataError(f"packaged {_PACKAGED_CATALOG_NAME} is invalid: {error}") from error
    assert catalog_file.models, "packaged catalog must not be empty"
    return catalog_file


def load_catalog(overrides_path: Path | None = None) -> Catalog:
    """Load the packaged catalog and merge operator overrides/additions from `overrides_path`.

    The override file (TOML or JSON) is described in proxy/catalog/overrides.py. With overrides
    the catalog version becomes "<packaged version>+overrides.<hash of the override content>".
    """
    catalog_file = read_packaged_catalog_file()
    models = catalog_file.models
    version = catalog_file.catalog_version
    sources = catalog_file.sources
    if overrides_path is not None:
        overrides = read_overrides(overrides_path)
        models = apply_overrides(models, overrides, origin=str(overrides_path))
        version = f"{version}+overrides.{overrides.content_sha256[:12]}"
        sources = (
            *sources,
            CatalogSource(
                name=f"operator overrides {overrides_path.name}",
                version=overrides.content_sha256[:12],
                licence="operator",
                url=str(overrides_path),
                used_for="operator price/limit overrides and additional models",
            ),
        )
    return Catalog(models, version=version, sources=sources, generated_at=catalog_file.generated_at)
