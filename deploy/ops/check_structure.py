#!/usr/bin/env python3
"""Structure checks of the Rust tree that the compiler does not make (issue 15).

1. No module cycle inside a crate: a file that names another module's path
   (`crate::a::b`, `super::x`, `self::y`, in a `use` or inline) depends on the file that
   defines that module. Every such dependency between two files must point one way, so a
   reader can learn the crate bottom-up. A parent that only declares `mod child;` does not
   depend on it; a parent that uses or re-exports the child's items does. Test modules
   (`tests.rs`, `*_tests.rs`, and whatever follows `#[cfg(test)]` in a file) are leaves
   and are not checked: they may import anything.
2. No tracked source file (.rs, .py, .sh) over 600 lines.

Prints every cycle (as a path of files) and every long file; exits 1 if there is any.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

MAX_LINES = 600
ROOT = Path(__file__).resolve().parents[2]

PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
# `use crate::a::{b, c::d}` names modules inside braces too.
USE_RE = re.compile(r"\buse\s+(crate|super|self|[a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}", re.S)
CFG_TEST_ITEM_RE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?(?:mod|use)\s[^;{]*;")
# A path that starts with a child module's bare name (`use child::X`, `child::f()`).
BARE_RE = re.compile(r"(?<![:\w])([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
RAW_RE = re.compile(r'b?r(#*)"')
CHAR_RE = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'")


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / line for line in out.splitlines() if line]


def is_test_file(path: Path) -> bool:
    return path.name == "tests.rs" or path.stem.endswith("_tests")


def crate_roots() -> list[Path]:
    """Each crate's `src/` directory with a lib.rs or main.rs."""
    roots = set()
    for path in tracked("*.rs"):
        if path.parent.name == "src" and path.name in ("lib.rs", "main.rs"):
            roots.add(path.parent)
    return sorted(roots)


def module_of(src: Path, path: Path) -> tuple[str, ...]:
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts
    if parts in (("lib",), ("main",)):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip(text: str) -> str:
    """The text without comments and with string and char literals emptied, scanned left
    to right so a quote inside a comment or an apostrophe of a lifetime misleads nothing."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and RAW_RE.match(text, i) and (i == 0 or not text[i - 1].isalnum()):
            hashes = RAW_RE.match(text, i).group(1)
            end = text.find('"' + hashes, RAW_RE.match(text, i).end())
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and CHAR_RE.match(text, i):
            out.append("' '")
            i = CHAR_RE.match(text, i).end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def code_of(text: str) -> str:
    """The non-test code of a file, without comments and string literals."""
    text = strip(text)
    # `#[cfg(test)] mod tests;` and other one-line test items are dropped; an inline test
    # module (`#[cfg(test)] mod tests {`) runs to the end of the file by convention.
    text = CFG_TEST_ITEM_RE.sub("", text)
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return text


def resolve(module: tuple[str, ...], head: str, tail: list[str], modules: set) -> tuple | None:
    if head == "crate":
        base: tuple[str, ...] = ()
    elif head == "self":
        base = module
    else:
        base = module
        while tail and tail[0] == "super":
            tail = tail[1:]
            base = base[:-1]
        base = base[:-1]
    path = base + tuple(tail)
    # The longest prefix that is a module of this crate is the file depended on.
    for n in range(len(path), -1, -1):
        if path[:n] in modules:
            return path[:n]
    return None


def edges_of(module, code, modules):
    found = set()
    for match in PATH_RE.finditer(code):
        head, rest = match.group(1), match.group(2)
        tail = [p for p in rest.split("::") if p]
        target = resolve(module, head, tail, modules)
        if target is not None:
            found.add(target)
    for match in BARE_RE.finditer(code):
        name = match.group(1)
        if name in ("crate", "super", "self") or module + (name,) not in modules:
            continue
        tail = [p for p in match.group(2).split("::") if p]
        target = resolve(module, "self", [name] + tail, modules)
        if target is not None:
            found.add(target)
    for match in USE_RE.finditer(code):
        head, rest, inner = match.group(1), match.group(2), match.group(3)
        prefix = [p for p in rest.split("::") if p]
        if head not in ("crate", "super", "self"):
            if module + (head,) not in modules:
                continue  # another crate
            head, prefix = "self", [head] + prefix
        for item in re.split(r"[,{}\s]+", inner):
            names = [p for p in item.split("::") if p and p != "self" and p != "*"]
            if not names:
                continue
            target = resolve(module, head, prefix + names, modules)
            if target is not None:
                found.add(target)
    found.discard(module)
    return found


def cycles_in(src: Path) -> list[list[Path]]:
    files = {}
    for path in src.rglob("*.rs"):
        if is_test_file(path):
            continue
        if path.name == "main.rs" and (src / "lib.rs").exists():
            continue  # a binary beside a library is its own crate, using the library's name
        files[module_of(src, path)] = path
    # Nested crate roots (another crate's src under this one) do not exist here.
    modules = set(files)
    graph = {m: edges_of(m, code_of(p.read_text()), modules) for m, p in files.items()}
    # Each module depends on its ancestors only through what it names; the root's `mod`
    # declarations are not dependencies. Find strongly connected components (Tarjan).
    index, low, stack, on_stack, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:
        members = set(comp)
        # Show one concrete cycle through the component: a shortest path back to the start.
        start = sorted(comp)[0]
        path = shortest_cycle(graph, start, members)
        out.append([files[m] for m in path])
    return out


def shortest_cycle(graph, start, members):
    from collections import deque

    prev = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def main() -> int:
    bad = 0
    for src in crate_roots():
        for cycle in cycles_in(src):
            bad += 1
            print("module cycle: " + " -> ".join(str(p.relative_to(ROOT)) for p in cycle))
    for pattern in ("*.rs", "*.py", "*.sh"):
        for path in tracked(pattern):
            lines = sum(1 for _ in path.open(encoding="utf-8", errors="replace"))
            if lines > MAX_LINES:
                bad += 1
                print(f"over {MAX_LINES} lines: {path.relative_to(ROOT)} ({lines})")
    if bad:
        print(f"{bad} structure problem(s)")
        return 1
    print("structure: no module cycle, no file over 600 lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
