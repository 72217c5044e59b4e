"""libs/ imports itself only with relative imports, so that the installed package (`stm_cycle`, see
pyproject.toml) works under its own name: this lists (or, with --fix, rewrites) the absolute ones.

    .venv/bin/python tools/relative_imports.py          # list `from libs.x import y` / `import libs.x` lines
    .venv/bin/python tools/relative_imports.py --fix    # rewrite them as `from ..x import y` in place
"""
import argparse
import ast
import os
import re
import sys
from typing import Iterator, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "libs"

Fix = Tuple[str, int, str, str]          # (file, line number, line, its relative form)


def relative(package: List[str], target: List[str]) -> str:
    """The relative module name of `target` seen from inside `package` (both as lists of names)."""
    common = 0
    while common < min(len(package), len(target)) and package[common] == target[common]:
        common += 1
    return "." * (len(package) - common + 1) + ".".join(target[common:])


def file_fixes(path: str, root: str = ROOT) -> Iterator[Fix]:
    """The absolute imports of the package in one file of it, each with its relative form."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    lines = source.splitlines(keepends=True)
    package = os.path.relpath(path, root)[:-3].split(os.sep)[:-1]     # libs/a/b.py -> ['libs', 'a']
    for node in ast.walk(ast.parse(source, path)):
        line = lines[node.lineno - 1] if isinstance(node, (ast.Import, ast.ImportFrom)) else ""
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == PACKAGE:
            new = re.sub(rf"from\s+{re.escape(node.module)}\s+import",
                         f"from {relative(package, node.module.split('.'))} import", line, count=1)
            yield path, node.lineno, line, new
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in node.names):
            name = node.names[0].name.split(".")
            if len(node.names) > 1 or node.names[0].asname or len(name) < 2:
                yield path, node.lineno, line, line          # no automatic form: to rewrite by hand
                continue
            new = re.sub(rf"import\s+{re.escape(node.names[0].name)}\b",
                         f"from {relative(package, name[:-1])} import {name[-1]}", line, count=1)
            yield path, node.lineno, line, new


def all_fixes(root: str = ROOT) -> List[Fix]:
    """The absolute imports of the package in every .py file under root/libs."""
    found = []
    for folder, _, files in sorted(os.walk(os.path.join(root, PACKAGE))):
        found += [fix for name in sorted(files) if name.endswith(".py")
                  for fix in file_fixes(os.path.join(folder, name), root)]
    return found


def apply(fixes: List[Fix]) -> None:
    """Rewrite the lines of `fixes` in their files."""
    for path in sorted({fix[0] for fix in fixes}):
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        for _, number, _, new in (fix for fix in fixes if fix[0] == path):
            lines[number - 1] = new
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)


def main() -> None:
    """List the absolute imports (exit 1 when there are some), or rewrite them with --fix."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="rewrite them in place")
    fixes = all_fixes()
    if parser.parse_args().fix:
        apply([fix for fix in fixes if fix[2] != fix[3]])
        fixes = all_fixes()
    for path, number, line, new in fixes:
        print(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}  ->  {new.strip()}")
    sys.exit(1 if fixes else 0)


if __name__ == "__main__":
    main()
