"""Say plainly when mmio is imported from a source checkout whose compiled modules were never built.

``python3 -m benchmarks`` or ``python3 -m sphinx`` run from the root of a clone put the clone first on
``sys.path``, so ``import mmio`` finds the bare source tree instead of the installed package. Without this,
the user sees ``No module named 'mmio._mapping'`` and nothing about why.
"""

from __future__ import annotations

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def source_tree_error(missing: ModuleNotFoundError) -> ImportError:
    """Return the error to raise for ``missing``: an explanation when it is an unbuilt checkout, else ``missing``.

    Parameters
    ----------
    missing : ModuleNotFoundError
        What importing a compiled module of mmio raised.
    """
    in_checkout = os.path.exists(os.path.join(PACKAGE_DIR, os.pardir, "setup.py"))  # an installed mmio has none
    unbuilt_checkout = in_checkout and (missing.name or "").startswith("mmio._")
    if not unbuilt_checkout:
        return missing
    return ImportError(
        f"mmio is being imported from its source tree ({PACKAGE_DIR}), where its compiled modules are not built "
        f"({missing.name} is missing). `python3 -m ...` puts the current directory first on sys.path: run from "
        "another directory to use the installed mmio, or build the modules in place with "
        "`python3 -m pip install -e .` (the README's test command does).", name=missing.name, path=PACKAGE_DIR)
