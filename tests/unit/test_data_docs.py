"""GX data docs as a gate writes them: every page loads its scripts, styles, fonts and images
from the site itself (nothing from the internet), and validation pages name their run and asset."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.quality import data_docs
from marketing_warehouse.quality.gates import docs_run_name, run_gate

DS = date(2026, 11, 21)
LOCAL_HOSTS = {"localhost", "127.0.0.1"}


class Assets(HTMLParser):
    """What a browser fetches to show the page: script src, stylesheet/icon href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag in ("script", "img", "source", "iframe") and attrs.get("src"):
            self.assets.append((tag, attrs["src"]))
        if tag == "link" and attrs.get("href"):
            self.assets.append((tag, attrs["href"]))

    def handle_data(self, data) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One raw gate through real GX on a small suite (about 15 s): its data docs site."""
    tmp = tmp_path_factory.mktemp("data_docs")
    suites = tmp / "expectations"
    (suites / "raw").mkdir(parents=True)
    (suites / "gates.yml").write_text(
        "raw:\n"
        "  - suite: raw/orders\n"
        "    sql: select * from (values (1, 'a'), (7, 'b')) as t(quantity, code)\n"
    )
    expectation = {
        "type": "expect_column_values_to_be_between",
        "severity": "critical",
        "kwargs": {"column": "quantity", "min_value": 0, "max_value": 5},
    }
    (suites / "raw" / "orders.json").write_text(
        json.dumps({"name": "raw/orders", "expectations": [expectation]})
    )
    settings = load_settings(
        {"MWH_DATA_DIR": str(tmp / "data"), "MWH_EXPECTATIONS_DIR": str(suites)}
    )
    run_gate(settings, "raw", DS, "scheduled__2026-11-21T02:00:00+00:00")
    return settings.layout.gx_docs_site()


def _pages(site: Path) -> list[Path]:
    return [
        p
        for p in sorted(site.rglob("*.html"))
        if data_docs.VENDOR not in p.relative_to(site).parents
    ]


def test_every_page_loads_its_assets_from_the_site_and_each_exists(site):
    pages = _pages(site)
    kinds = {p.relative_to(site).parts[0] for p in pages}
    assert {"index.html", "expectations", "validations"} <= kinds, kinds
    checked = 0
    for page in pages:
        parser = Assets()
        html = page.read_text("utf-8")
        parser.feed(html)
        assert len(parser.assets) >= 10, page  # bootstrap, jquery, ... (not stripped away)
        for tag, url in parser.assets:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https"):
                assert parts.hostname in LOCAL_HOSTS, (page.relative_to(site), tag, url)
                continue
            assert not parts.scheme and not url.startswith("//"), (page, url)
            target = (page.parent / parts.path).resolve()
            assert target.is_file(), (page.relative_to(site), tag, url)
            assert site.resolve() in target.parents, url  # within the served site
            checked += 1
        assert "integrity=" not in html
    assert checked > 30


def test_stylesheets_find_their_fonts_and_images(site):
    """font-awesome's CSS loads its web fonts by relative url(): they are copied beside it."""
    css_files = list((site / data_docs.VENDOR).rglob("*.css"))
    assert css_files
    for css in css_files:
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", css.read_text("utf-8")):
            if url.startswith(("data:", "#")):
                continue
            assert "://" not in url, (css, url)
            assert (css.parent / url.split("?")[0].split("#")[0]).is_file(), (css, url)


def test_validation_pages_name_their_run_and_asset(site):
    [page] = list((site / "validations").rglob("*.html"))
    run_name = docs_run_name(DS, "raw")
    assert run_name == "2026-11-21-raw"
    assert run_name in page.relative_to(site).parts and "__none__" not in str(page)
    parser = Assets()
    parser.feed(page.read_text("utf-8"))
    text = " ".join(" ".join(parser.text).split())
    assert "Data asset: raw.orders" in text and "Data asset: None" not in text
    index = (site / "index.html").read_text("utf-8")
    assert f"'run_name': '{run_name}'" in index and "__none__" not in index


def test_every_cdn_address_of_the_gx_templates_has_its_npm_copy():
    """A GX upgrade that loads another CDN file fails here until it is vendored."""
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    found = set()
    for template in templates.glob("*.j2"):
        for tag in re.findall(r"<(?:script|link|img)\b[^>]*>", template.read_text("utf-8")):
            found |= set(re.findall(r'(?:src|href)="(https?://[^"]+)"', tag))
    assert found and found <= data_docs.CDN_ASSETS.keys(), found - data_docs.CDN_ASSETS.keys()
    assert data_docs.IMAGES_BUCKET in (templates / "top_navbar.j2").read_text("utf-8")
    for url, (package, version, _) in data_docs.CDN_ASSETS.items():
        assert data_docs.vendored_file(url).is_file(), url
        manifest = json.loads((data_docs.ASSETS_DIR / package / "package.json").read_text())
        assert (manifest["name"], manifest["version"]) == (package, version), url
        pinned = re.search(r"[@/](\d+\.\d+\.\d+)", url)
        if pinned and package != "bootstrap-table":  # the templates name 1.19.0 and 1.19.1
            assert pinned.group(1) == version, url
