"""Calling an agent's ``run`` export for less than wasmtime-py's generic call costs.

wasmtime-py's ``Func.__call__`` reads the function's type from the store on every call, builds a
Python object for every parameter and result type, and walks the result's cases to lift it: about
50 µs of Python per step, a third of a trivial step's CPU (measured, ``bench/sandbox.py``). The
agent ABI fixes the shape: ``run`` takes strings and returns ``result<string, string>``. So the
export's index and shape are read once per component, and a call of that shape goes straight to
the C API; any other shape takes the generic path, which gives the same answer.

Values cross the C API as ``wasmtime_component_val_t``: parameters are deleted after the call
(as wasmtime-py does), and the result, once copied out, with one ``wasmtime_component_val_delete``,
which frees the boxed payload too (a loop of 20,000 calls returning 100 kB grows no memory).
"""

from __future__ import annotations

import weakref
from ctypes import byref
from typing import Any

from wasmtime import Store, WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import Component, Instance, ResultType, String, Variant
from wasmtime.component._component import ExportIndex
from wasmtime.component._enter import maybe_raise_last_exn

__all__ = ["NO_RUN", "RunExport", "run_export"]

_STRING = ffi.WASMTIME_COMPONENT_STRING
_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value

#: What :meth:`RunExport.call` returns for a component without a ``run`` function.
NO_RUN = object()


class RunExport:
    """A component's ``run`` export: its index, and whether its shape allows the direct call."""

    def __init__(self, component: Component) -> None:
        self.index: ExportIndex | None = component.get_export_index("run")
        #: how many strings ``run`` takes if its shape is the ABI's, else -1; read at the first
        #: call (the type needs a store)
        self.arity: int | None = None

    def call(self, instance: Instance, store: Store, args: tuple[str, ...]) -> Any:
        """``run(*args)`` on ``instance``: a :class:`Variant` (``ok``/``err``) for the ABI's
        shape, whatever the component returns otherwise; :data:`NO_RUN` if it has no ``run``.
        Raises :class:`WasmtimeError` for a trap, as wasmtime-py does."""
        if self.index is None:
            return NO_RUN
        func = instance.get_func(store, self.index)
        if func is None:
            return NO_RUN
        if self.arity is None:
            self.arity = _abi_arity(func.type(store))
        if len(args) != self.arity or not all(type(arg) is str for arg in args):
            return func(store, *args)
        return _direct(func, store, args)


def _abi_arity(func_type: Any) -> int:
    params = func_type.params
    result = func_type.result
    shaped = (
        all(isinstance(ty, String) for _name, ty in params)
        and isinstance(result, ResultType)
        and isinstance(result.ok, String)
        and isinstance(result.err, String)
    )
    return len(params) if shaped else -1


def _direct(func: Any, store: Store, args: tuple[str, ...]) -> Variant:
    count = len(args)
    params = (ffi.wasmtime_component_val_t * count)()
    made = 0
    result = ffi.wasmtime_component_val_t()
    try:
        for i, arg in enumerate(args):
            params[i].kind = _STRING
            params[i].of.string = ffi.str_to_capi(arg)
            made += 1
        error = ffi.wasmtime_component_func_call(
            byref(func._func), store._context(), params, count, byref(result), 1
        )
    finally:
        for i in range(made):
            ffi.wasmtime_component_val_delete(byref(params[i]))
    if error:
        exc = WasmtimeError._from_ptr(error)
        maybe_raise_last_exn()
        raise exc
    try:
        if result.kind != _RESULT:  # pragma: no cover - the type was checked above
            raise WasmtimeError("run returned something other than a result")
        box = result.of.result.val
        payload = ffi.to_str(box.contents.of.string) if box else ""
        return Variant("ok" if result.of.result.is_ok else "err", payload)
    finally:
        ffi.wasmtime_component_val_delete(byref(result))


_exports: weakref.WeakKeyDictionary[Component, RunExport] = weakref.WeakKeyDictionary()


def run_export(component: Component) -> RunExport:
    """The :class:`RunExport` of ``component`` (made once, dropped with the component)."""
    found = _exports.get(component)
    if found is None:
        found = _exports.setdefault(component, RunExport(component))
    return found
