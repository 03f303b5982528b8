#!/usr/bin/env python3
"""Module cycles in the crates of this workspace.

For every folder of every crate's `src` (the crate root and each module
folder), the modules directly in it must not import each other in a circle.
A module's imports are the `crate::a::b` and `super::x` paths in its files
(a folder counts as one module with everything under it); `#[cfg(test)]`
modules are left out, and a folder's `mod.rs` (like `lib.rs` for the crate)
is its root, which declares and re-exports its children and is no node.

Usage: scripts/check-module-cycles.py [CRATE_SRC_DIR ...]   (default: crates/*/src)
Prints each circle and exits 1 when there is one.
"""
import os
import re
import sys
from pathlib import Path

TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{.*", re.S)
CRATE_PATH = re.compile(r"\bcrate::((?:\w+::)*\w+)")
CRATE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}")
SUPER_PATH = re.compile(r"\b((?:super::)+)(\w+)")


def module_of(src: Path, file: Path) -> tuple:
    """The module path of a file: src/a/b.rs and src/a/b/mod.rs are ("a", "b")."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def references(src: Path, file: Path) -> set:
    """Module paths (as tuples from the crate root) this file names."""
    text = TEST_MODULE.sub("", file.read_text(encoding="utf-8", errors="replace"))
    text = re.sub(r"//[^\n]*", "", text)
    here = module_of(src, file)
    out = set()
    for m in CRATE_PATH.finditer(text):
        out.add(tuple(m.group(1).split("::")))
    for m in CRATE_GROUP.finditer(text):
        for name in re.findall(r"(?:^|,)\s*(\w+)", m.group(1)):
            out.add((name,))
    for m in SUPER_PATH.finditer(text):
        # `super` is the parent of this file's module, whether the file is
        # `a/b.rs` or `a/b/mod.rs`.
        ups = m.group(1).count("super::")
        out.add(here[: max(len(here) - ups, 0)] + (m.group(2),))
    return out


def cycles(graph: dict) -> list:
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def check(src: Path) -> list:
    files = sorted(p for p in src.rglob("*.rs"))
    refs = {f: references(src, f) for f in files}
    problems = []
    folders = {()} | {module_of(src, f)[:-1] for f in files if module_of(src, f)}
    folders |= {module_of(src, f) for f in files if f.name == "mod.rs"}
    for folder in sorted(folders):
        depth = len(folder)
        children = {}
        for f in files:
            m = module_of(src, f)
            if len(m) > depth and m[:depth] == folder:
                children.setdefault(m[depth], []).append(f)
        graph = {c: set() for c in children}
        for child, its_files in children.items():
            for f in its_files:
                for r in refs[f]:
                    if len(r) > depth and r[:depth] == folder and r[depth] in children and r[depth] != child:
                        graph[child].add(r[depth])
        for c in cycles(graph):
            where = "/".join((str(src),) + folder)
            problems.append(f"{where}: modules import each other in a circle: {' -> '.join(c)}")
    return problems


def main() -> int:
    roots = [Path(a) for a in sys.argv[1:]] or sorted(Path("crates").glob("*/src"))
    problems = [p for root in roots for p in check(root)]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
