"""Docs and comments cite only what a user of the repository has: files that exist, sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_FILES = sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("src/**/*.yaml"), *ROOT.glob("src/**/*.html"),
                     *ROOT.glob("src/**/*.js"), *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*.py"),
                     *ROOT.glob("tests/*.py"), ROOT / "README.md", ROOT / "Makefile"])
OUTSIDE = re.compile(r"(model|metrics|datasets)_spec|design/|shared/paper|\bissues? #?\d+|\bissue \d+")
SECTION_REF = re.compile(r"docs/(model|metrics|datasets)\.md §(\d+(?:\.\d+)?)|\[(model|metrics|datasets)\.md\]\(\3\.md\) §(\d+(?:\.\d+)?)")


def _headings(md: Path) -> set[str]:
    """Section numbers of a doc: "## 3. Title" -> "3", "### 3.2 Title" -> "3.2"."""
    return {m.group(1) for m in re.finditer(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", md.read_text(), re.M)}


def test_no_reference_to_files_outside_the_repository():
    me = Path(__file__).resolve()
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in TEXT_FILES if p.resolve() != me
             for i, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "\n".join(found)


def test_cited_doc_sections_exist():
    sections = {name: _headings(ROOT / "docs" / f"{name}.md") for name in ("model", "metrics", "datasets")}
    assert all(sections.values())
    missing, cited = [], 0
    for p in TEXT_FILES:
        for i, line in enumerate(p.read_text().splitlines(), 1):
            for m in SECTION_REF.finditer(line):
                name, number = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                cited += 1
                if number not in sections[name]:
                    missing.append(f"{p.relative_to(ROOT)}:{i}: {name}.md §{number}")
    assert cited > 20 and not missing, missing  # the code cites these docs throughout


def test_relative_links_of_the_docs_resolve():
    broken = []
    for md in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            if not (md.parent / target.split("#")[0]).exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, broken
