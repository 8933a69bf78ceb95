"""GX data docs that work offline: the scripts, styles and fonts their pages load, served from
the site itself instead of CDNs.

GX 1.x's page templates load bootstrap, bootstrap-table, jQuery, popper, datepicker, vega and
font-awesome from public CDNs and its logo from an S3 bucket; offline the pages render unstyled
and their tables stay empty. The wheel ships only its own images, styles and fonts. The files
below are the npm registry's packages of the versions the templates name (vendored in
``data_docs_assets/<package>/``, each with its package.json and licence); after every
``build_data_docs`` they are copied into the site's ``static/vendor/`` and each page's CDN
address is rewritten to the relative path of its copy (``localize``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS_DIR = Path(__file__).with_name("data_docs_assets")
#: The site folder (inside GX's data docs site) the vendored files are copied to.
VENDOR = Path("static") / "vendor"

#: Every CDN address in GX's data-docs templates -> (npm package, version, file in the package).
#: A template address missing here fails tests/unit/test_data_docs.py (a GX upgrade must add it).
CDN_ASSETS: dict[str, tuple[str, str, str]] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap",
        "4.3.1",
        "dist/css/bootstrap.min.css",
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap",
        "4.3.1",
        "dist/js/bootstrap.min.js",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table",
        "1.19.1",
        "dist/bootstrap-table.min.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table",
        "1.19.1",
        "dist/bootstrap-table.min.js",
    ),
    # the templates name 1.19.0 for the filter-control styles, 1.19.1 for its script: one copy
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table",
        "1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table",
        "1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table",
        "1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker",
        "1.9.0",
        "dist/css/bootstrap-datepicker.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker",
        "1.9.0",
        "dist/js/bootstrap-datepicker.min.js",
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "dist/css/bootstrap-prefers-dark.css",
    ),
    # "vega@5" etc.: the CDN serves the newest release of the major version (its package.json
    # "jsdelivr" file); pinned here to the newest when vendored
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega", "5.33.1", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite", "5.23.0", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": (
        "vega-embed",
        "6.29.0",
        "build/vega-embed.min.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "css/all.min.css",
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery", "3.7.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js",
        "1.12.9",
        "dist/umd/popper.min.js",
    ),
}
#: GX's logo comes from this bucket; the wheel ships the same images in the site's static/images.
IMAGES_BUCKET = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
_TAG = re.compile(r"<(script|link|img)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r'\s(src|href)="([^"]*)"')
_SRI = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')


def vendored_file(url: str) -> Path:
    package, _, path = CDN_ASSETS[url]
    return ASSETS_DIR / package / path


def _local(url: str, page: Path, site: Path) -> str | None:
    """The relative address, from ``page``, of the site's copy of what ``url`` points at."""
    if url in CDN_ASSETS:
        package, _, path = CDN_ASSETS[url]
        target = site / VENDOR / package / path
    elif url.startswith(IMAGES_BUCKET):
        target = site / "static" / "images" / url[len(IMAGES_BUCKET) :].split("?", 1)[0]
    elif "://" not in url and "/static/" in f"/{url}" and not (page.parent / url).exists():
        # GX counts one folder too few from a validation page to the site's favicon
        target = site / "static" / f"/{url}".split("/static/", 1)[1]
    else:
        return None
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _rewrite(html: str, page: Path, site: Path) -> str:
    def tag(match: re.Match) -> str:
        text = match.group(0)
        changed = False

        def attr(found: re.Match) -> str:
            nonlocal changed
            local = _local(found.group(2), page, site)
            if local is None:
                return found.group(0)
            changed = True
            return f' {found.group(1)}="{local}"'

        text = _ATTR.sub(attr, text)
        # a subresource-integrity check of a file:// copy fails in browsers: the copy is the
        # npm package's own file, checked by the tests instead
        return _SRI.sub("", text) if changed else text

    return _TAG.sub(tag, html)


def localize(site: Path) -> list[Path]:
    """Copy the vendored files into ``site``'s ``static/vendor`` and point every page at them;
    return the pages rewritten. Idempotent (a page already pointing at its copies is left)."""
    if not (site / "index.html").exists():
        return []
    shutil.copytree(ASSETS_DIR, site / VENDOR, dirs_exist_ok=True)
    changed = []
    for page in sorted(site.rglob("*.html")):
        if VENDOR in page.relative_to(site).parents:
            continue
        text = page.read_text("utf-8")
        new = _rewrite(text, page, site)
        if new != text:
            tmp = page.with_suffix(".html.tmp")
            tmp.write_text(new, "utf-8")
            tmp.replace(page)
            changed.append(page)
    return changed
