"""The docs a reader navigates: every relative link resolves (to a file, and to a heading where
it names one), nothing points at a file that is not shipped, and docs/configuration.md names
every setting with the default settings.py and .env.example give it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks_server.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HIDDEN = re.compile(r"^```.*?^```|<!--.*?-->", re.S | re.M)  # code blocks and comments
_ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| (`[^`]*`|—) \|", re.M)


def _prose(page: Path) -> str:
    """The page as a reader sees it: without code blocks (whose brackets are not links) and
    comments."""
    return _HIDDEN.sub("", page.read_text())


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", _prose(page), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _links(page: Path) -> list[str]:
    return [link for link in _LINK.findall(_prose(page)) if "://" not in link]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    for link in _links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{link} in {page.name}: no such file"
        assert ROOT in target.parents or target == ROOT, f"{link} leaves the repository"
        if anchor:
            assert target.suffix == ".md", link
            assert anchor in _anchors(target), f"{link} in {page.name}: no such heading"


# A path into the repository named in prose: from one of its top folders, read from the root.
_PATH = re.compile(
    r"(?<![\w./-])((?:tasks_server|tests|scripts|docs|packaging|nix|\.ci)/[\w./-]*\w)"
)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_file_named_in_the_text_is_shipped(page: Path) -> None:
    for named in _PATH.findall(_prose(page)):
        assert (ROOT / named).exists(), f"{named} in {page.name}: no such file"


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[gone](missing.md) [here](#title) [there](#nowhere)\n")
    assert _links(page) == ["missing.md", "#title", "#nowhere"]
    assert _anchors(page) == {"title"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_no_page_points_at_the_unshipped_specification(page: Path) -> None:
    assert not re.search(r"\bSPEC\b|ARCHITECTURE\.md", page.read_text())


def test_the_readme_keeps_the_two_commands_and_links_into_docs() -> None:
    text = (ROOT / "README.md").read_text()
    assert "```sh\n./scripts/run     #" in text and "\n./scripts/test    #" in text
    linked = {link.partition("#")[0] for link in _links(ROOT / "README.md")}
    for page in ("api", "configuration", "security", "operations", "postgresql", "cli"):
        assert f"docs/{page}.md" in linked, page
    assert {"docs/dashboard.md", "docs/tracing.md", "docs/performance.md"} <= linked
    assert {"LICENSE", "CHANGELOG.md"} <= linked


def _documented() -> dict[str, str]:
    """Each variable of docs/configuration.md and its default as written ("" when unset)."""
    rows = _ROW.findall(CONFIGURATION.read_text())
    documented = {name: "" if default == "—" else default.strip("`") for name, default in rows}
    assert len(documented) == len(rows), "a variable is documented twice"
    return documented


def _example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def test_configuration_names_every_setting_with_the_env_examples_default() -> None:
    documented = _documented()
    assert set(documented) == {name.upper() for name in Settings.model_fields}
    assert documented == _example()


def test_configuration_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the documented defaults gives the settings the server starts with."""
    for name, value in _documented().items():
        if value:
            monkeypatch.setenv(name, value)
    assert load_settings() == Settings(_env_file=None)  # type: ignore[call-arg]
