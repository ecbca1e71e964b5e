"""From a cell to a file: write a service defined in a notebook cell as a module, and a pytest file beside it.

The module holds the imports and definitions the class uses, taken from the notebook's cells (the newest
definition of each name), the cell's own imports, the class, and a ``__main__`` that calls ``main()``. The
test starts the service in a separate process (:class:`fastiot.testlib.BackgroundProcess`), sends it
messages (a few of a recording's, else examples made from its models' JSON schemas), and asserts its
handler counters. It passes as written; extend it.

Example:
    >>> from fastiot.services.export import export_service
    >>> cell = '''
    ... from fastiot.core import FastIoTService, subscribe
    ... from fastiot.msg.thing import Thing
    ... class Printer(FastIoTService):
    ...     @subscribe(subject=Thing.get_subject(">"))
    ...     async def on_thing(self, thing: Thing) -> None:
    ...         print(thing)
    ... '''
    >>> exported = export_service(Printer, "printer.py", cell=cell)  # doctest: +SKIP
    >>> exported.module.name, exported.test.name  # doctest: +SKIP
    ('printer.py', 'test_printer.py')
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastiot.core.service import FastIoTService
from fastiot.exceptions import ServiceExportError
from fastiot.services._export_test import test_source

__all__ = ["DEFAULT_EXAMPLE_MESSAGES", "ExportedService", "export_service", "module_source"]

DEFAULT_EXAMPLE_MESSAGES = 3
"""Messages the generated test sends to each ``@subscribe`` handler."""
_BUILTINS = frozenset(dir(builtins))
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOP_LEVEL_AWAIT = ast.PyCF_ONLY_AST | getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)


@dataclass(frozen=True)
class ExportedService:
    """What :func:`export_service` wrote.

    Attributes:
        class_name: The service class.
        module: The module's path.
        test: The pytest file's path.
        unresolved: Names the class uses that no cell defines or imports; the module needs them added.
        test_kept: The test file existed and was left as it is (``keep_test``).
    """

    class_name: str
    module: Path
    test: Path
    unresolved: tuple[str, ...] = field(default=())
    test_kept: bool = False

    def __str__(self) -> str:
        """What was written, as the magic and the Export button say it."""
        test = f"kept its test {self.test}" if self.test_kept else f"its test {self.test}"
        text = f"wrote {self.module} and {test}"
        if self.unresolved:
            text += f"; add what defines {', '.join(self.unresolved)} (no cell imports or defines it)"
        return text


@dataclass
class _Binding:
    """A top-level statement of a cell that binds a name: an import, a def/class or an assignment."""

    order: tuple[int, int]
    source: str
    is_import: bool
    uses: set[str]


def _parse(source: str) -> ast.Module | None:
    """The cell as a syntax tree; IPython's ``%magic`` and ``!shell`` lines left out; None if not Python."""
    for text in (source, _without_magics(source)):
        try:
            tree = compile(text, "<cell>", "exec", flags=_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:
            continue
        assert isinstance(tree, ast.Module)
        return tree
    return None


def _without_magics(source: str) -> str:
    # Blank lines in their place keep the line numbers of the statements left.
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _names_used(node: ast.AST) -> set[str]:
    """The global names ``node`` may use: loaded names (string annotations too) it does not bind itself."""
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    for annotation in _annotations(node):  # "Thing" in a cell with postponed annotations
        for n in ast.walk(annotation):
            if isinstance(n, ast.Constant) and isinstance(n.value, str):
                try:
                    used |= {
                        m.id for m in ast.walk(ast.parse(n.value, mode="eval")) if isinstance(m, ast.Name)
                    }
                except SyntaxError:
                    pass
    return used - _BUILTINS - _locals(node)


def _annotations(node: ast.AST) -> list[ast.expr]:
    found: list[ast.expr] = []
    for n in ast.walk(node):
        if isinstance(n, ast.arg) and n.annotation is not None:
            found.append(n.annotation)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns is not None:
            found.append(n.returns)
        elif isinstance(n, ast.AnnAssign):
            found.append(n.annotation)
    return found


def _locals(node: ast.AST) -> set[str]:
    """Names bound inside the functions of ``node`` (arguments, assignments): never a cell's global."""
    bound: set[str] = set()
    for function in ast.walk(node):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for n in ast.walk(function):
                if isinstance(n, ast.arg):
                    bound.add(n.arg)
                elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    bound.add(n.id)
    return bound


def _segment(source: str, node: ast.stmt) -> str:
    lines = _without_magics(source).splitlines()
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    assert node.end_lineno is not None  # set by the parser for every statement
    return textwrap.dedent("\n".join(lines[first - 1 : node.end_lineno]))


def _import_of(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    name = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
    if isinstance(node, ast.Import):
        return f"import {name}"
    return f"from {'.' * node.level}{node.module or ''} import {name}"


def _bindings(index: int, source: str) -> dict[str, _Binding]:
    """The names the top-level statements of one cell bind."""
    tree = _parse(source)
    found: dict[str, _Binding] = {}
    if tree is None:
        return found
    for position, node in enumerate(tree.body):
        order = (index, position)
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    continue
                bound = alias.asname or alias.name.split(".")[0]
                found[bound] = _Binding(order, _import_of(node, alias), True, set())
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = _Binding(order, _segment(source, node), False, _names_used(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Await) for n in ast.walk(node)) or node.value is None:
                continue  # needs the running loop (a connection, a started plant): no definition
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = _Binding(order, _segment(source, node), False, _names_used(node.value))
    return found


def _namespace_import(name: str, namespace: Mapping[str, Any]) -> str | None:
    """``from module import name`` for an object of the namespace that its module holds under that name."""
    value = namespace.get(name)
    if value is None:
        return None
    module = getattr(value, "__module__", None) if not isinstance(value, type(sys)) else None
    if isinstance(value, type(sys)):
        return f"import {value.__name__}" if value.__name__ == name else f"import {value.__name__} as {name}"
    if not module or module == "__main__" or getattr(sys.modules.get(module), name, None) is not value:
        return None
    return f"from {module} import {name}"


def _merged_imports(lines: list[str]) -> list[str]:
    """``from m import a`` and ``from m import b`` as ``from m import a, b``, in the order of first use."""
    merged: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("from "):
            module, _, name = line[len("from ") :].partition(" import ")
            names = merged.setdefault(f"from {module} import ", [])
            if name not in names:
                names.append(name)
        else:
            merged.setdefault(line, [])
    return [head + ", ".join(names) if names else head for head, names in merged.items()]


def module_source(
    class_name: str,
    cell: str,
    history: Sequence[str] = (),
    namespace: Mapping[str, Any] | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The source of a module holding the service ``class_name`` of ``cell``, and the names left unresolved.

    Args:
        class_name: The service class the cell defines.
        cell: The cell's Python source (without its ``%%service`` line).
        history: The notebook's earlier cells, oldest first, as Python source.
        namespace: The notebook's namespace: a name no cell binds is imported from the module of its value.

    Returns:
        The module's source, and the names the class uses that nothing resolves.

    Raises:
        ServiceExportError: The cell does not parse, or defines no class ``class_name``.
    """
    tree = _parse(cell)
    if tree is None:
        raise ServiceExportError(f"the cell of {class_name} is not valid Python; fix it and run it again")
    target = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if target is None:
        defined = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        raise ServiceExportError(
            f"the cell defines no class {class_name} (its classes: {', '.join(defined) or 'none'})"
        )
    cells = [*history, cell]
    bindings: dict[str, _Binding] = {}
    for index, source in enumerate(cells):
        bindings.update(_bindings(index, source))
    own_index = len(cells) - 1
    chosen: dict[str, _Binding] = {
        name: b for name, b in bindings.items() if b.is_import and b.order[0] == own_index
    }
    extra_imports: list[str] = []
    unresolved: list[str] = []
    pending = sorted(_names_used(target))
    while pending:
        name = pending.pop()
        if name in chosen or name == class_name:
            continue
        binding = bindings.get(name)
        if binding is not None:
            chosen[name] = binding
            pending.extend(sorted(binding.uses))
            continue
        line = _namespace_import(name, namespace or {})
        if line is not None:
            extra_imports.append(line)
        elif name not in unresolved and name not in ("annotations",):
            unresolved.append(name)
    ordered = sorted(chosen.values(), key=lambda b: b.order)
    imports = _merged_imports([*(b.source for b in ordered if b.is_import), *extra_imports])
    definitions = [b.source for b in ordered if not b.is_import]
    parts = [
        f'"""{class_name}: a FastIoT service exported from a notebook cell.\n\n'
        f"Run it with ``python <this file>`` or ``fastiot-workbench run <this file> --reload``; it connects\n"
        f'with the FASTIOT_NATS_* settings and stops gracefully on SIGTERM.\n"""',
        "\n".join(imports),
        *definitions,
        _segment(cell, target),
        f"def main() -> None:\n    {class_name}.main()",
        'if __name__ == "__main__":\n    main()',
    ]
    if unresolved:
        parts.insert(1, f"# TODO: import or define {', '.join(sorted(unresolved))} (no notebook cell does)")
    return "\n\n\n".join(p for p in parts if p) + "\n", tuple(sorted(unresolved))


def export_service(
    service: type[FastIoTService],
    path: str | Path,
    *,
    cell: str,
    history: Sequence[str] = (),
    namespace: Mapping[str, Any] | None = None,
    messages: Iterable[tuple[str, Any]] | None = None,
    recording: str | None = None,
    overwrite: bool = False,
    keep_test: bool = False,
) -> ExportedService:
    """Write the service ``service`` of ``cell`` to the module ``path``, and ``test_<name>.py`` beside it.

    Args:
        service: The service class the cell defines (its handlers make the test).
        path: The module's file (``.py`` is added if missing); its folder is created.
        cell: The cell's Python source (without its ``%%service`` line).
        history: The notebook's earlier cells, oldest first: imports and definitions the class uses are
            taken from them.
        namespace: The notebook's namespace, for names no cell binds.
        messages: (subject, payload dict) pairs the test sends (e.g. from a recording); default: examples
            made from the models' JSON schemas.
        recording: The recording ``messages`` come from, named in the test.
        overwrite: Replace existing files.
        keep_test: Leave an existing test file as it is (the user may have extended it); write the module.

    Returns:
        The paths written and the names left unresolved.

    Raises:
        ServiceExportError: ``service`` is no service class, the cell defines no class of its name, the
            file name is not a module name, or a file exists and ``overwrite`` is False.

    Example:
        >>> export_service(OverheatWatch, "services/overheat_watch.py", cell=cell_source)  # doctest: +SKIP
    """
    if not (isinstance(service, type) and issubclass(service, FastIoTService)):
        raise ServiceExportError(f"export_service() takes a FastIoTService subclass, got {service!r}")
    class_name = service.__name__
    module = Path(path).expanduser()
    if module.suffix != ".py":
        module = module.with_name(module.name + ".py")
    if not module.stem.isidentifier():
        raise ServiceExportError(
            f"{module.name} is no module name: use letters, digits and underscores, e.g. overheat_watch.py"
        )
    test = module.with_name(f"test_{module.name}")
    keep = keep_test and test.exists()
    for existing in (module,) if keep else (module, test):
        if existing.exists() and not overwrite:
            raise ServiceExportError(f"{existing} exists; pass overwrite=True (or --force) to replace it")
    source, unresolved = module_source(class_name, cell, history, namespace)
    test_text = test_source(service, module.stem, messages=messages, recording=recording)
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(source)
    if not keep:
        test.write_text(test_text)
    return ExportedService(class_name, module, test, unresolved, test_kept=keep)
