"""The direct call of ``run`` gives what wasmtime-py's generic call gives, and falls back to it."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest
from wasmtime import Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Instance, Linker, Variant

from sandbox import OutcomeKind, RunContext, SandboxEngine, StepLimits, run_step
from sandbox.call import NO_RUN, run_export
from tests.sandbox import wat

# `run: func(input: string) -> string`: not the ABI's shape, so the generic call serves it
PLAIN_STRING = r"""
(component
  (core module $M
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
    (func (export "run") (param $p i32) (param $n i32) (result i32)
      (i32.store (i32.const 2048) (local.get $p))
      (i32.store (i32.const 2052) (local.get $n))
      (i32.const 2048)))
  (core instance $m (instantiate $M))
  (alias core export $m "memory" (core memory $memory))
  (alias core export $m "realloc" (core func $realloc))
  (func (export "run") (param "input" string) (result string)
    (canon lift (core func $m "run") (memory $memory) (realloc $realloc) string-encoding=utf8)))
"""

NO_RUN_EXPORT = r"""
(component
  (core module $M (func (export "go")))
  (core instance $m (instantiate $M))
  (func (export "go") (canon lift (core func $m "go"))))
"""


@pytest.fixture(scope="module")
def engine() -> Iterator[SandboxEngine]:
    made = SandboxEngine()
    yield made
    made.close()


def _instance(engine: SandboxEngine, component: Component) -> tuple[Store, Instance]:
    store = Store(engine.engine)
    store.set_fuel(10**9)
    store.set_wasi(WasiConfig())
    store.set_epoch_deadline(10**6)
    linker = Linker(engine.engine)
    linker.add_wasip2()
    with linker.root() as root, root.add_instance("agentflow:agent/host@0.1.0") as host:
        host.add_func("llm-complete", lambda _s, _r: Variant("err", "none"))
        host.add_func("log", lambda _s, _l, _m: None)
        host.add_func("write-file", lambda _s, _p, _d: Variant("err", "none"))
    return store, linker.instantiate(store, component)


@pytest.mark.parametrize("text", ["", '{"a": 1}', "héllo ✓ 🚀", "x" * 100_000])
@pytest.mark.parametrize("source", [wat.ECHO, wat.FAILING])
def test_direct_and_generic_calls_agree(engine, source, text):
    component = engine.load(source)
    export = run_export(component)
    store, instance = _instance(engine, component)
    direct = export.call(instance, store, (text,))
    assert export.arity == 1  # the ABI's shape: the direct call served it
    store, instance = _instance(engine, component)
    func = instance.get_func(store, "run")
    assert func is not None
    generic = func(store, text)
    assert isinstance(direct, Variant)
    assert (direct.tag, direct.payload) == (generic.tag, generic.payload)


def test_the_direct_call_frees_what_it_is_given_and_returns():
    engine = SandboxEngine()
    try:
        component = engine.load(wat.ECHO)
        export = run_export(component)
        big = "y" * 100_000
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(3000):  # 300 MB in and 300 MB out if nothing were freed
            store, instance = _instance(engine, component)
            assert export.call(instance, store, (big,)).payload == big
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown_kib < 50_000
    finally:
        engine.close()


def test_another_shape_takes_the_generic_call(engine):
    component = engine.load(PLAIN_STRING)
    export = run_export(component)
    store, instance = _instance(engine, component)
    assert export.call(instance, store, ("plain",)) == "plain"
    assert export.arity == -1
    report = run_step(engine, component, "{}", RunContext(limits=StepLimits()))
    assert report.outcome.kind is OutcomeKind.TRAP
    assert report.outcome.detail == "run returned something other than a result"


def test_a_call_with_other_arguments_takes_the_generic_call(engine):
    component = engine.load(wat.ECHO)
    store, instance = _instance(engine, component)
    with pytest.raises(TypeError, match="wrong number of parameters"):
        run_export(component).call(instance, store, ("a", "b"))


def test_a_component_without_run(engine):
    component = engine.load(NO_RUN_EXPORT)
    store, instance = _instance(engine, component)
    assert run_export(component).call(instance, store, ("{}",)) is NO_RUN
    report = run_step(engine, component, "{}", RunContext(limits=StepLimits()))
    assert report.outcome.kind is OutcomeKind.TRAP
    assert report.outcome.detail == "the component exports no run function"


def test_a_trap_in_the_direct_call_raises_as_wasmtime_does(engine):
    component = engine.load(wat.TRAPPING)
    store, instance = _instance(engine, component)
    with pytest.raises(WasmtimeError, match="unreachable"):
        run_export(component).call(instance, store, ("{}",))
