"""The documentation stays true: the config reference matches the schema, and links resolve."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spiking_dreamer.config_loading import flatten_keys

from .helpers import declared_defaults

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# a reference row: | `section.key` | `default` | meaning |
ROW = re.compile(
    r"^\| `(?P<key>[a-z_0-9]+\.[a-z_0-9]+)` \| `(?P<default>[^`]*)` \| (?P<meaning>.*) \|$"
)
# [text](target) and ![alt](target); the target ends at whitespace or ")"
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _documented() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in CONFIG_DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            assert m["key"] not in rows, f"{m['key']} is documented twice"
            rows[m["key"]] = (m["default"], m["meaning"])
    return rows


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal kinds (``true`` is not ``1``); floats to 12 digits."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float)
        return ok and not isinstance(a, bool) and math.isclose(a, b, rel_tol=1e-12)
    return type(a) is type(b) and a == b


def test_configuration_doc_lists_every_key_with_its_default() -> None:
    defaults = flatten_keys(declared_defaults())
    rows = _documented()
    assert sorted(set(defaults) - set(rows)) == [], "keys missing from docs/configuration.md"
    assert sorted(set(rows) - set(defaults)) == [], "documented keys that do not exist"
    for key, (text, meaning) in rows.items():
        assert _same(yaml.safe_load(text), defaults[key]), (
            f"docs/configuration.md: {key} default `{text}`, but the schema's is {defaults[key]!r}"
        )
        assert len(meaning.strip()) > 5, f"{key} has no meaning"


def test_configuration_doc_agrees_with_default_yaml() -> None:
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    from_yaml = flatten_keys(data)
    rows = _documented()
    assert set(from_yaml) == set(rows)
    for key, value in from_yaml.items():
        assert _same(yaml.safe_load(rows[key][0]), value), key


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {_slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not prose
    text = re.sub(r"`[^`\n]*`", "", text)
    return [m["target"] for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    assert page.exists()
    bad = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert bad == [], f"{page.relative_to(ROOT)}: broken links: {bad}"


def test_docs_commands_need_nothing_outside_the_repository() -> None:
    """Commands in the docs run from a clean clone: no paths into a sibling checkout."""
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", page.read_text(), flags=re.DOTALL):
            assert "../shared" not in block, f"{page.name}: {block}"
            assert "shared/" not in block, f"{page.name}: {block}"
