#!/usr/bin/env python3
"""Checks the module graph of the library crates: no module imports the crate root (lib.rs is a
face of docs and re-exports), and no two sibling modules import each other, directly or through
others. A parent and its own children may refer to each other (a child implementing its parent's
type is composition, not a cycle). Exits 1 and names every violation; prints the graph with -v.

Usage: scripts/check-modules.py [-v] [crate/src ...]
"""

import re
import sys
from pathlib import Path

CRATES = ["registry-core/src", "registry-storage/src", "registry-http/src"]


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def strip(text: str) -> str:
    """The code without comments, strings and its unit tests (an inline `#[cfg(test)] mod`,
    by convention the file's last item: tests are not part of the architecture)."""
    text = re.sub(r"//[^\n]*", "", text)
    test = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if test:
        text = text[: test.start()]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def use_tree(text: str, i: int) -> tuple:
    """Paths of the use tree (or plain path) starting at text[i]; the index after it. A path
    naming a macro (`path!`) is left out: exported macros live at the crate root by design."""
    segment = []
    while True:
        rest = text[i:].lstrip()
        i = len(text) - len(rest)
        if rest.startswith("{"):
            return group(text, i + 1, segment)
        if rest.startswith("*"):
            return [segment], i + 1
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*(::)?", rest)
        if not m:
            return [segment], i
        segment.append(m.group(1))
        i += m.end()
        if not m.group(2):
            if text[i:].lstrip().startswith("!"):
                return [], i
            return [segment], i


def group(text: str, i: int, prefix: list) -> tuple:
    """The paths of a `{...}` use group whose items start at text[i], each after `prefix`."""
    paths = []
    while True:
        rest = text[i:].lstrip()
        i = len(text) - len(rest)
        if rest.startswith("}"):
            return paths, i + 1
        if rest.startswith(","):
            i += 1
            continue
        sub, j = use_tree(text, i)
        if j == i:
            return paths, i
        paths += [prefix + s for s in sub]
        i = j
        m = re.match(r"\s*as\s+[A-Za-z_][A-Za-z0-9_]*", text[i:])
        if m:
            i += m.end()


def references(module: tuple, text: str):
    """Absolute paths (tuples) that `module`'s code names through crate::, super:: and self::."""
    code = strip(text)
    for m in re.finditer(r"\b(crate|super|self)((?:\s*::\s*super)*)\s*::", code):
        base = list(module)
        if m.group(1) == "super":
            base = base[:-1]
        elif m.group(1) == "crate":
            base = []
        base = base[: len(base) - m.group(2).count("super")]
        for path in use_tree(code, m.end())[0]:
            yield tuple(base + [p for p in path if p != "self"])


def check(src: Path, verbose: bool) -> list:
    # A `tests.rs` holds a module's unit tests, which are not part of the architecture.
    files = {module_of(src, f): f for f in src.rglob("*.rs") if f.name != "tests.rs"}
    modules = set(files)
    problems, edges = [], set()
    for module, file in sorted(files.items()):
        for path in references(module, file.read_text()):
            target = max((m for m in modules if path[: len(m)] == m), key=len)
            if target == () and module != () and len(path) == 1 and path not in modules:
                problems.append(f"{file}: imports the crate root's `{path[0]}`")
                continue
            if target == () or target == module:
                continue
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common in (len(module), len(target)):
                continue  # a parent and its own descendant
            edges.add((module[: common + 1], target[: common + 1]))
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    if verbose:
        for a in sorted(graph):
            print(f"{src}: {'::'.join(a)} -> {', '.join('::'.join(b) for b in sorted(graph[a]))}")
    # Cycles: a strongly connected component of more than one module.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(scc)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    for scc in sccs:
        names = sorted("::".join(m) for m in scc)
        problems.append(f"{src}: modules import each other: {' <-> '.join(names)}")
    return problems


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv[1:]
    root = Path(__file__).resolve().parent.parent
    problems = []
    for crate in args or CRATES:
        problems += check(root / crate, verbose)
    for p in problems:
        print(p)
    if not problems:
        print("modules: no cycles, no imports of a crate root")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
