"""``/docs``: Swagger UI served from the package's vendored assets, never from a CDN."""

from __future__ import annotations

import glob
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from segue.static.docs import VENDOR, add_docs

pytestmark = pytest.mark.anyio

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def references(html: str) -> list[str]:
    """Every URL the page's tags and Swagger UI's config point at."""
    return [a or b for a, b in _REFERENCE.findall(html)]


async def test_docs_load_only_local_assets_and_the_server_serves_them(client):
    page = await client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = references(page.text)
    assert urls, page.text
    assert not [u for u in urls if not u.startswith("/") or u.startswith("//")], urls
    assert "cdn" not in page.text.lower()
    assert '"validatorUrl": null' in page.text  # no call to validator.swagger.io either
    assets = [u for u in urls if u != "/openapi.json"]
    assert {u.rsplit("/", 1)[1] for u in assets} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon-32x32.png",
    }
    for url in assets:
        served = await client.get(url)
        assert served.status_code == 200, url
        local = VENDOR / url.removeprefix("/static/vendor/")
        assert served.content == local.read_bytes(), url
    assert (await client.get("/openapi.json")).status_code == 200


async def test_docs_assets_carry_the_root_path_behind_a_prefix(app):
    transport = httpx.ASGITransport(app=app, root_path="/models/cancer")
    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as http:
        page = await http.get("/models/cancer/docs")

    assert page.status_code == 200
    urls = references(page.text)
    assert "/models/cancer/openapi.json" in urls
    assert "/models/cancer/static/vendor/swagger-ui/swagger-ui-bundle.js" in urls


async def test_any_app_can_add_the_docs_page():
    app = FastAPI(title="Team server", docs_url=None, openapi_url="/api/openapi.json")
    add_docs(app, docs_url="/api/docs")
    add_docs(app, docs_url="/api/docs2")  # the assets are mounted once

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as http:
        page = await http.get("/api/docs")
        css = await http.get("/static/vendor/swagger-ui/swagger-ui.css")

    assert "/api/openapi.json" in references(page.text)
    assert "<title>Team server - docs</title>" in page.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert sum(getattr(r, "path", None) == "/static/vendor" for r in app.routes) == 1
    assert "/static/vendor" not in app.openapi()["paths"]


def test_the_package_ships_the_vendored_assets():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    repo = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["segue"]
    shipped = {
        Path(path)
        for pattern in patterns
        for path in glob.glob(str(repo / "segue" / pattern), recursive=True)
        if Path(path).is_file()
    }
    static = repo / "segue" / "static"
    vendored = {p for p in (static / "vendor").rglob("*") if p.is_file()}

    assert vendored and vendored <= shipped
    # The copy imported here (installed, in CI) has them too.
    assert all((VENDOR / p.relative_to(static / "vendor")).is_file() for p in vendored)


def test_the_versions_file_lists_every_vendored_file_with_its_hash():
    text = (VENDOR / "VERSIONS.md").read_text()
    listed = dict(
        (path, digest) for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)
    )
    files = {
        str(path.relative_to(VENDOR)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in VENDOR.rglob("*")
        if path.is_file() and path.name != "VERSIONS.md"
    }

    assert listed == files
    assert "5.35.0" in text and "Apache-2.0" in text
