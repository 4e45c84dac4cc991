"""Defer importing what alpaca-py imports but the daemon never uses: pandas (and numpy).

alpaca-py's models (the daemon's wire format, DESIGN.md) live in `alpaca.trading`, whose
``__init__`` imports its synchronous client and ``alpaca/trading/requests.py``, which does
``import pandas as pd`` for one validator (``pd.Timestamp`` in a corporate-announcements
request execd never builds). pandas and numpy cost ~0.36 s and ~50 MB at every start.

`defer` puts a `importlib.util.LazyLoader` module in `sys.modules` before alpaca-py is
imported: ``import pandas as pd`` then binds a module whose code has not run, and the
first attribute anyone reads (``pd.Timestamp``, ``from pandas import DataFrame`` in
`alpaca.data`) runs it in full, as a plain import would have. A process that never
touches pandas never loads it. Installed from ``execd/__init__.py`` so that no import
order inside execd can get there first.

A deferred module whose code fails on first touch (pandas over a numpy of the wrong ABI)
fails as a plain import would: the ImportError is raised to whoever touched it and the
half-run module is taken out of `sys.modules`, so the next ``import pandas`` runs it again
and raises the same error (instead of "succeeding" with half a module and failing later
with AttributeErrors far from the cause).

Caveat: on Python 3.11 the first touch is not thread-safe (two threads touching a deferred
module at the same moment could both run its code; fixed in 3.12). execd's threads never
touch pandas.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

DEFERRED = ("pandas",)
"""Modules loaded on first use. numpy is only imported by pandas (and alpaca.data), so it
follows pandas without being listed."""


_LazyModule: type[types.ModuleType] | None = getattr(importlib.util, "_LazyModule", None)


if _LazyModule is not None:

    class _DeferredModule(_LazyModule):  # type: ignore[misc, valid-type]
        """The stdlib's lazy module, except that reading ``__spec__`` does not load it.

        An ``import pandas`` statement on a module already in `sys.modules` reads its
        ``__spec__`` (is it still initialising?): with the stdlib's class that alone runs
        pandas, so ``import pandas as pd`` in alpaca-py would load it at once.
        """

        def __getattribute__(self, attr: str) -> Any:
            if attr == "__spec__":
                return types.ModuleType.__getattribute__(self, "__dict__")["__spec__"]
            return super().__getattribute__(attr)


class _ForgetOnFailure:
    """The module's own loader, wrapped so that a failed first touch unregisters the module.

    The LazyLoader runs ``module.__spec__.loader.exec_module(module)`` on first touch,
    outside the import system, which would have removed a failed module from
    `sys.modules`; this does that. It puts the real loader back on the module first, so
    once loaded (or failed) the module looks exactly as a plain import leaves it.
    """

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> types.ModuleType | None:
        result: types.ModuleType | None = self._loader.create_module(spec)
        return result

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = self._loader
        module.__loader__ = self._loader
        try:
            self._loader.exec_module(module)
        except BaseException:
            if sys.modules.get(spec.name) is module:
                del sys.modules[spec.name]
            raise


def defer(name: str) -> bool:
    """Make `name` load on first attribute access; False when it is imported already or
    not installed, or this Python has no lazy modules (nothing changes then)."""
    if name in sys.modules or _LazyModule is None:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return False
    # A duck-typed Loader (what LazyLoader calls is `exec_module`): importlib.abc is not
    # imported for one base class at every start.
    loader = importlib.util.LazyLoader(cast("Loader", _ForgetOnFailure(spec.loader)))
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    module.__class__ = _DeferredModule
    return True


def is_loaded(name: str) -> bool:
    """True when `name`'s own code has run (a deferred module that nobody touched: False)."""
    module = sys.modules.get(name)
    if module is None:
        return False
    # A deferred module's class is a lazy-module class until its first touch; reading the
    # type (not ``__class__``) does not touch it.
    return _LazyModule is None or not issubclass(type(module), _LazyModule)


def install() -> None:
    """Defer every module in `DEFERRED` (see the module docstring)."""
    for name in DEFERRED:
        defer(name)
