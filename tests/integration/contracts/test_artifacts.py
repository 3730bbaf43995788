"""The committed contract artifacts are exactly what the pinned compiler builds from the committed sources.

Method: run scripts/build_contracts.mjs (node + npm solc) into a temporary directory and compare bytes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts import ARTIFACTS_DIR, SOURCES_DIR, load_artifact

ROOT = Path(__file__).resolve().parents[3]
BUILD_TIMEOUT_S = 60
TOKEN_NAMES = ("TestUSDC", "TestUSDT0")


def test_committed_artifacts_are_fresh(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    subprocess.run(
        [node, str(ROOT / "scripts" / "build_contracts.mjs"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=BUILD_TIMEOUT_S,
    )
    built = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in ARTIFACTS_DIR.glob("*.json"))
    assert built == committed
    for name in built:
        fresh = (tmp_path / name).read_bytes()
        stale_hint = f"{name} is stale: run node scripts/build_contracts.mjs"
        assert fresh == (ARTIFACTS_DIR / name).read_bytes(), stale_hint


@pytest.mark.parametrize("name", TOKEN_NAMES)
def test_artifact_records_source_hashes(name: str) -> None:
    artifact = load_artifact(name)
    sources = {f"src/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in SOURCES_DIR.glob("*.sol")}
    assert artifact.sources_sha256 == sources
    assert artifact.compiler_version.startswith("0.8.37+")
    functions = {(e["name"], len(e["inputs"])) for e in artifact.abi if e["type"] == "function"}
    assert ("transferWithAuthorization", 9) in functions
    assert ("transferWithAuthorization", 7) in functions
    assert ("authorizationState", 2) in functions


def test_permit2_and_the_upto_proxy_expose_what_x402_calls() -> None:
    """The SignatureTransfer half of Permit2 and the proxy's `settle`, in the shapes the official SDK uses."""
    permit2 = {(e["name"], len(e["inputs"])) for e in load_artifact("Permit2").abi if e["type"] == "function"}
    assert {
        ("permitWitnessTransferFrom", 6),
        ("permitTransferFrom", 4),
        ("nonceBitmap", 2),
        ("invalidateUnorderedNonces", 2),
        ("DOMAIN_SEPARATOR", 0),
    } <= permit2
    [settle] = [e for e in load_artifact("X402UptoPermit2Proxy").abi if e.get("name") == "settle"]
    assert [i["type"] for i in settle["inputs"]] == ["tuple", "uint256", "address", "tuple", "bytes"]
    assert [c["name"] for c in settle["inputs"][3]["components"]] == ["to", "facilitator", "validAfter"]
    # Placed with anvil_setCode, so no constructor may set state: the runtime code is all there is.
    assert load_artifact("X402UptoPermit2Proxy").deployed_bytecode != "0x"
