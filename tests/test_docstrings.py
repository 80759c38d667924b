"""The examples in the helpers' docstrings run and show what they say (doctest).

An engineer copying a helper reads its docstring first; an example that no longer holds
is worse than none. ``make test`` runs no ``--doctest-modules``, so this test does it,
one module at a time.
"""

import doctest
import importlib
import pkgutil

import pytest

import helpers

MODULES = sorted(m.name for m in pkgutil.walk_packages(helpers.__path__, "helpers.") if m.name != "helpers.__main__")


def test_every_module_is_found():
    assert {"helpers.teacher", "helpers.local.clients", "helpers.render"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed (output above)"
