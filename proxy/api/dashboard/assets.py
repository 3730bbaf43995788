"""The dashboard's static files, shipped inside the package (no CDN), read once when the app is built."""

from __future__ import annotations

import hashlib
from importlib import resources

from pydantic import BaseModel, ConfigDict

__all__ = ["Asset", "DashboardAssets", "load_dashboard_assets"]

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


class Asset(BaseModel):
    model_config = ConfigDict(frozen=True)

    body: bytes
    content_type: str
    etag: str


class DashboardAssets(BaseModel):
    model_config = ConfigDict(frozen=True)

    files: dict[str, Asset]

    def get(self, name: str) -> Asset | None:
        return self.files.get(name)


def load_dashboard_assets() -> DashboardAssets:
    """Every file of proxy/api/dashboard/static by name; only these names are ever served."""
    folder = resources.files("proxy.api.dashboard").joinpath("static")
    files: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if not entry.is_file() or suffix not in _CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        files[entry.name] = Asset(
            body=body,
            content_type=_CONTENT_TYPES[suffix],
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        )
    assert "page.html" in files
    assert "login.html" in files
    return DashboardAssets(files=files)
