"""What ruff cannot check of the docstring convention: a class documents its constructor's arguments.

pyproject.toml ignores ruff's D107 (no docstring on ``__init__``) because Google style documents
``__init__``'s arguments in the class docstring's ``Args:`` section; this test holds that side of the
bargain for every public class of ``fastiot``, so ``help(NatsServer)`` lists what it takes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fastiot

_ARGS_SECTION = re.compile(r"^Args:\n((?:(?:    .*)?\n?)*)", re.MULTILINE)
# "name:", "name (type):", and grouped "start, end:" entries.
_ENTRY = re.compile(r"^    \*{0,2}(\w+(?:, \*{0,2}\w+)*)(?: \(.*?\))?:", re.MULTILINE)


def undocumented_init_arguments(root: Path) -> list[str]:
    """``file:line Class: [arguments]`` per public class with ``__init__`` arguments missing from Args."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            for item in node.body:
                if not (isinstance(item, ast.FunctionDef) and item.name == "__init__"):
                    continue
                args = item.args
                names = [a.arg for a in [*args.posonlyargs, *args.args[1:], *args.kwonlyargs]]
                if args.kwarg is not None:
                    names.append(args.kwarg.arg)
                section = _ARGS_SECTION.search(ast.get_docstring(node) or "")
                documented = (
                    {
                        n.strip().lstrip("*")
                        for group in _ENTRY.findall(section.group(1))
                        for n in group.split(",")
                    }
                    if section
                    else set()
                )
                missing = [n for n in names if n not in documented]
                if missing:
                    found.append(f"{path.relative_to(root.parent)}:{item.lineno} {node.name}: {missing}")
    return found


def test_every_public_class_documents_its_constructor_arguments_under_args() -> None:
    assert undocumented_init_arguments(Path(fastiot.__file__).parent) == []


def test_the_check_finds_an_undocumented_argument(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        'class Documented:\n    """A thing.\n\n    Args:\n'
        '        size: How big.\n        start, end: The range.\n    """\n\n'
        "    def __init__(self, size: int, start: int, end: int) -> None: ...\n\n\n"
        'class Undocumented:\n    """A thing without Args."""\n\n'
        "    def __init__(self, size: int, **kwargs: object) -> None: ...\n\n\n"
        "class _Private:\n    def __init__(self, size: int) -> None: ...\n",
        encoding="utf-8",
    )
    assert undocumented_init_arguments(package) == ["pkg/mod.py:15 Undocumented: ['size', 'kwargs']"]
