#!/usr/bin/env python3
"""Prints which files of a module folder use which (`super::x`, `crate::<folder>::x`) and fails
when they form a loop. `scripts/test.sh` runs it on src/proxy, whose request path must read
top-down (docs/architecture.md).

    scripts/module-graph.py src/proxy
"""
import pathlib
import re
import sys


def edges(folder: pathlib.Path):
    names = {p.stem for p in folder.glob("*.rs") if p.stem != "mod"}
    crate_path = "crate::" + "::".join(folder.parts[1:]) + "::"
    graph = {}
    for path in sorted(folder.glob("*.rs")):
        if path.stem == "mod":
            continue
        text = path.read_text()
        # Unit tests may use anything; they are not part of the request path.
        text = text.split("#[cfg(test)]")[0]
        used = set()
        for m in re.finditer(r"(?:super|" + re.escape(crate_path[:-2]) + r")::(\{[^}]*\}|\w+)", text):
            group = m.group(1)
            items = re.findall(r"\w+", group) if group.startswith("{") else [group]
            used.update(i for i in items if i in names and i != path.stem)
        graph[path.stem] = sorted(used)
    return graph


def find_cycle(graph):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in graph:
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def main():
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src/proxy")
    graph = edges(folder)
    for node, used in graph.items():
        print(f"{folder}/{node}.rs -> {', '.join(used) or '-'}")
    cycle = find_cycle(graph)
    if cycle:
        print(f"module loop in {folder}: {' -> '.join(cycle)}", file=sys.stderr)
        return 1
    print(f"{folder}: no module loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
