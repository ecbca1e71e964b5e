"""Find service classes by ``module[:ClassName]``: a dotted module name or a ``.py`` file.

What ``fastiot-workbench run`` and ``fastiot-workbench asyncapi`` take on their command lines.

Example:
    >>> from fastiot.services.loading import load_services
    >>> [cls.__name__ for cls in load_services("fastiot.demo:PlantStatusService")]
    ['PlantStatusService']
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fastiot.core.service import FastIoTService
from fastiot.exceptions import ServiceExportError

__all__ = ["load_module", "load_services", "services_of", "split_spec"]


def load_module(target: str) -> ModuleType:
    """Import ``target``: a ``.py`` file (its folder goes first on ``sys.path``) or a dotted module name.

    A file is imported fresh on every call, under its file name, so a changed file is read again.

    Args:
        target: ``path/to/service.py`` or ``package.module``.

    Returns:
        The module.

    Raises:
        ServiceExportError: The file does not exist, or the module cannot be found.
    """
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ServiceExportError(f"no file {path}; give a service module like my_service.py")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # the module's own imports of its neighbours work as with python
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None  # a .py file always has a source loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # pydantic and pickling look classes up by their module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        raise ServiceExportError(
            f"cannot import {target!r} ({e}); give a dotted module name on sys.path or a .py file"
        ) from None


def services_of(module: ModuleType) -> list[type[FastIoTService]]:
    """The service classes defined in ``module``, without those only used as base classes of others."""
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, FastIoTService)
        and value is not FastIoTService
        and value.__module__ == module.__name__
    ]
    return [cls for cls in found if not any(o is not cls and issubclass(o, cls) for o in found)]


def load_services(spec: str) -> list[type[FastIoTService]]:
    """The service classes ``spec`` names: ``module:ClassName``, or every one of ``module``.

    Args:
        spec: ``module[:ClassName]`` where module is a ``.py`` file or a dotted module name.

    Returns:
        The classes, at least one.

    Raises:
        ServiceExportError: The module cannot be loaded, has no such class, or defines no service.

    Example:
        >>> load_services("my_service.py:OverheatWatch")  # doctest: +SKIP
        [<class 'my_service.OverheatWatch'>]
    """
    target, name = split_spec(spec)
    module = load_module(target)
    if name:
        cls = getattr(module, name, None)
        if not (isinstance(cls, type) and issubclass(cls, FastIoTService)):
            known = ", ".join(c.__name__ for c in services_of(module)) or "none"
            raise ServiceExportError(f"{target} has no service class {name!r} (its services: {known})")
        return [cls]
    classes = services_of(module)
    if not classes:
        raise ServiceExportError(
            f"{target} defines no FastIoTService subclass; write one there or name it: {target}:ClassName"
        )
    return classes


def split_spec(spec: str) -> tuple[str, str]:
    """``module[:ClassName]`` as (module, class name or ``""``).

    Example:
        >>> split_spec("svc.py:OverheatWatch"), split_spec("fastiot.demo")
        (('svc.py', 'OverheatWatch'), ('fastiot.demo', ''))
    """
    # "C:\\x\\svc.py" is a Windows path, not a class part: a class name is an identifier.
    head, sep, tail = spec.rpartition(":")
    return (head, tail) if sep and head and tail.isidentifier() else (spec, "")
