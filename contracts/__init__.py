"""Solidity sources of MegaRouter's test tokens and their committed compiled artifacts.

`scripts/build_contracts.mjs` writes `contracts/artifacts/<Name>.json`; this module only reads them, so
Python never needs a Solidity compiler. It must not import `proxy`, `x402` or `ledger`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ARTIFACTS_DIR", "SOURCES_DIR", "ContractArtifact", "load_artifact"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
SOURCES_DIR = Path(__file__).resolve().parent / "src"
_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEX_PATTERN = r"^0x([0-9a-f]{2})+$"


class ContractArtifact(BaseModel):
    """One compiled contract as the build script writes it (camelCase on disk)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    contract_name: str = Field(alias="contractName")
    source_name: str = Field(alias="sourceName")
    compiler_version: str = Field(alias="compilerVersion")
    settings: dict[str, Any]
    sources_sha256: dict[str, str] = Field(alias="sourcesSha256")
    abi: list[dict[str, Any]]
    bytecode: str = Field(pattern=_HEX_PATTERN)
    deployed_bytecode: str = Field(alias="deployedBytecode", pattern=_HEX_PATTERN)


def load_artifact(name: str, *, artifacts_dir: Path | None = None) -> ContractArtifact:
    """Reads and validates `<artifacts_dir>/<name>.json`; `name` is a contract name such as "TestUSDC"."""
    assert _NAME_PATTERN.match(name), f"not a contract name: {name!r}"
    path = (artifacts_dir or ARTIFACTS_DIR) / f"{name}.json"
    artifact = ContractArtifact.model_validate_json(path.read_text(encoding="utf-8"))
    assert artifact.contract_name == name
    return artifact
