#!/usr/bin/env python3
"""Checks the links of the project's Markdown pages (README.md, docs/, each crate's README):
every relative link names a file or folder that exists, and every #anchor a heading of its
page (GitHub's slugs). Prints each broken link with its page and line; exits 1 if any."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
pages = [root / "README.md", *sorted((root / "docs").glob("*.md")),
         *sorted(root.glob("*/README.md")), *sorted(root.glob("examples/*/README.md"))]
link = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def slug(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.*)", line)):
            found.add(slug(m.group(1)))
    return found


broken = 0
for page in pages:
    fenced = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        for target in link.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            why = None
            if not file.exists():
                why = "no such file"
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                why = f"no heading #{anchor}"
            if why:
                broken += 1
                print(f"{page.relative_to(root)}:{number}: {target}: {why}")
print(f"links: {len(pages)} pages checked, {broken} broken")
sys.exit(1 if broken else 0)
