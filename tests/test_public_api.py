"""The package's public face is exactly ``aiotts.__all__``: sorted, importable, complete."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import aiotts


def _sort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _fresh_import(code: str) -> object:
    """What ``code`` prints as JSON in a new interpreter that imported only ``aiotts``."""
    run = subprocess.run(
        [sys.executable, "-c", f"import json, aiotts\n{code}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(run.stdout)


def test_all_is_sorted_and_has_no_duplicates() -> None:
    assert list(aiotts.__all__) == sorted(aiotts.__all__, key=_sort_key)
    assert len(set(aiotts.__all__)) == len(aiotts.__all__)


def test_every_name_in_all_is_importable_and_public() -> None:
    for name in aiotts.__all__:
        assert not name.startswith("_"), name
        value = getattr(aiotts, name)  # AttributeError names a missing one
        assert not isinstance(value, types.ModuleType), f"{name} is a module"
        module = getattr(value, "__module__", None)
        if isinstance(value, type | types.FunctionType) and module is not None:
            assert module.split(".")[0] == "aiotts", f"{name} comes from {module}"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from aiotts import *", namespace)
    assert sorted(n for n in namespace if n != "__builtins__") == sorted(aiotts.__all__)


def test_every_public_name_of_the_package_is_in_all() -> None:
    # In a new interpreter, so that submodules other tests imported are not counted.
    public = _fresh_import(
        "import types\n"
        "print(json.dumps({n: isinstance(v, types.ModuleType)"
        " for n, v in vars(aiotts).items() if not n.startswith('_')}))"
    )
    assert isinstance(public, dict)
    assert sorted(public) == sorted(aiotts.__all__)
    modules = sorted(name for name, is_module in public.items() if is_module)
    assert modules == [], f"modules reachable by a public name: {modules}"
