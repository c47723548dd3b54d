"""The CEL library's compiled module, without its interactive shell.

The `cel` package's `__init__` imports its REPL (`cel.cli`, and with it prompt_toolkit
and rich) before its compiled extension `cel.cel`, which holds everything Ami calls
(`compile`, `evaluate`, `Context`): a third of a second of imports on the way to a
control plane that validates one Trigger or Pipeline with CEL in it, and in every
EventListener. `load()` imports the extension alone, registered under its own name so
that a later `import cel` finds it instead of initialising it twice.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

EXTENSION = "cel.cel"


@cache
def load() -> ModuleType:
    """The `cel.cel` extension module (the whole `cel` package if it is laid out
    otherwise than expected)."""
    loaded = sys.modules.get(EXTENSION)
    if loaded is None:
        loaded = _extension_alone() or importlib.import_module(EXTENSION)
    return loaded


def _extension_alone() -> ModuleType | None:
    try:
        package = importlib.util.find_spec("cel")
    except (ImportError, ValueError):
        return None
    if package is None or not package.submodule_search_locations:
        return None
    for directory in package.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(directory) / f"cel{suffix}"
            if not path.is_file():
                continue
            loader = importlib.machinery.ExtensionFileLoader(EXTENSION, str(path))
            spec = importlib.util.spec_from_file_location(EXTENSION, path, loader=loader)
            if spec is None:
                return None
            module = importlib.util.module_from_spec(spec)
            sys.modules[EXTENSION] = module
            try:
                loader.exec_module(module)
            except BaseException:
                del sys.modules[EXTENSION]
                raise
            return module
    return None
