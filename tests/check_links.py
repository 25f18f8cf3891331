#!/usr/bin/env python3
"""Every relative link in every Markdown file of the repository resolves: the file or directory exists,
and a ``#fragment`` names a heading (GitHub's anchor rules) or an HTML ``id``/``name`` in the target.

Usage: ``python3 tests/check_links.py`` (the files git knows, tracked or new and not ignored), or
``python3 tests/check_links.py FILE...``; ``--self-test`` first proves the checker catches a broken file
link, a broken anchor and a link hidden in neither code block nor code span. Standard library only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); the text may hold one level of nested brackets.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
HTML_ID = re.compile(r"""<[a-zA-Z][^>]*\s(?:id|name)\s*=\s*["']([^"']+)["']""")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1, with inline code spans blanked (unless
    ``blank_code`` is false: headings keep their code text)."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        out.append((number, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line) if blank_code else line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower-case, punctuation dropped except
    ``-`` and ``_``, spaces as ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", "", text)  # _emphasis_, not snake_case
    kept = []
    for char in text.lower():
        category = unicodedata.category(char)
        if char in "-_" or category[0] in "LN" or category == "Mn":
            kept.append(char)
        elif char == " ":
            kept.append("-")
    return "".join(kept)


def anchors(path: Path) -> set[str]:
    """Every fragment a link may use for the Markdown file ``path``."""
    text = path.read_text(encoding="utf-8")
    found: set[str] = set()
    seen: dict[str, int] = {}

    def add(heading: str) -> None:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    lines = prose_lines(text, blank_code=False)
    for index, (number, line) in enumerate(lines):
        atx = ATX.match(line)
        if atx:
            add(atx.group(2))
        elif (
            SETEXT.match(line)
            and index > 0
            and lines[index - 1][0] == number - 1
            and lines[index - 1][1].strip()
            and not ATX.match(lines[index - 1][1])
        ):
            add(lines[index - 1][1].strip())
        found.update(HTML_ID.findall(line))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """The link targets in ``path`` outside code, with their line numbers."""
    text = path.read_text(encoding="utf-8")
    found: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        for match in INLINE.finditer(line):
            found.append((number, match.group(1)))
        reference = REFERENCE.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in found]


def check(files: list[Path], root: Path) -> list[str]:
    """One message per link that does not resolve."""
    problems: list[str] = []
    anchor_cache: dict[Path, set[str]] = {}
    for path in files:
        for number, target in links(path):
            if SCHEME.match(target) or target.startswith("//"):
                continue  # http:, https:, mailto: ...: not checked (no network)
            where = f"{path.relative_to(root)}:{number}: {target}"
            file_part, _, fragment = target.partition("#")
            file_part = unquote(file_part.split("?", 1)[0])
            if file_part.startswith("/"):
                resolved = (root / file_part.lstrip("/")).resolve()
            elif file_part:
                resolved = (path.parent / file_part).resolve()
            else:
                resolved = path.resolve()
            if not resolved.exists():
                problems.append(f"{where}: no such file or directory")
                continue
            try:
                resolved.relative_to(root)
            except ValueError:
                problems.append(f"{where}: points outside the repository")
                continue
            if fragment and resolved.is_file() and resolved.suffix.lower() == ".md":
                if resolved not in anchor_cache:
                    anchor_cache[resolved] = anchors(resolved)
                if unquote(fragment) not in anchor_cache[resolved]:
                    problems.append(f"{where}: no heading or id #{fragment} in {resolved.relative_to(root)}")
    return problems


def markdown_files(root: Path) -> list[Path]:
    """The Markdown files git knows about: tracked, plus new ones that are not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md", "*.markdown"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    return sorted({root / name for name in listed.split("\0") if name and (root / name).is_file()})


def self_test() -> None:
    """The checker finds what it must find, and passes what it must pass."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(os.path.realpath(tmp))
        (root / "docs").mkdir()
        (root / "docs" / "a.md").write_text(
            "# Title\n\n## The URL (`bodySHA256`)\n\n## Twice\n\n## Twice\n\nOther\n-----\n\n"
            '<a id="custom"></a>\n'
            "[ok](../b.md) [ok](b.md#missing-but-dir-is-fine) [ok](#the-url-bodysha256) [ok](#twice-1)\n"
            "[ok](#other) [ok](#custom) [ok](https://example.com/x) [ok](<../b.md>)\n"
            "`[in code](nowhere.md)`\n\n```\n[in a fence](nowhere.md)\n```\n"
            "[bad file](nowhere.md)\n[bad anchor](../b.md#nope)\n[ref]: ../c.md\n",
            encoding="utf-8",
        )
        (root / "b.md").write_text("# B\n\n## Known heading\n[back](docs/a.md#title)\n", encoding="utf-8")
        (root / "docs" / "b.md").mkdir()
        problems = check([root / "docs" / "a.md", root / "b.md"], root)
        expected = [
            "docs/a.md:20: nowhere.md: no such file or directory",
            "docs/a.md:21: ../b.md#nope: no heading or id #nope in b.md",
            "docs/a.md:22: ../c.md: no such file or directory",
        ]
        if problems != expected:
            sys.exit("check_links self-test failed:\n  got " + "\n      ".join(problems))
    print("check_links: self-test passed (a broken file, anchor and reference link are caught)")


def main(argv: list[str]) -> int:
    if "--self-test" in argv:
        self_test()
        argv = [a for a in argv if a != "--self-test"]
    files = [Path(a).resolve() for a in argv] if argv else markdown_files(ROOT)
    problems = check(files, ROOT)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            f"check_links: {len(problems)} broken relative link(s) in {len(files)} Markdown files",
            file=sys.stderr,
        )
        return 1
    count = sum(len(links(f)) for f in files)
    print(f"check_links: {count} links in {len(files)} Markdown files, every relative one resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
