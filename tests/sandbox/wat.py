"""Agent components written in WAT, compiled by wasmtime in milliseconds: no toolchain needed.

Each fixture is the same component around a different core ``run(ptr, len) -> retptr``: the
input string is at ``ptr``; the result<string, string> is written at 2048 (tag byte, then
pointer and length) and 2048 is returned. Strings the module needs live in data segments.
"""

from __future__ import annotations

_WASI_IMPORTS = r"""
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (export "pollable" (type (eq $pollable)))
    (export "subscribe-duration" (func (param "when" u64) (result (own 0))))))"""
_WASI_LOWER = r"""
  (alias export $clock "subscribe-duration" (func $subscribe))
  (alias export $poll "[method]pollable.block" (func $block))
  (core func $subscribe_low (canon lower (func $subscribe)))
  (core func $block_low (canon lower (func $block)))"""
_WASI_MAIN = r"""
    (import "wasi" "subscribe" (func $subscribe (param i64) (result i32)))
    (import "wasi" "block" (func $block (param i32)))"""
_WASI_WITH = r"""
    (with "wasi" (instance (export "subscribe" (func $subscribe_low)) (export "block" (func $block_low))))"""


def component(
    run_body: str, *, data: str = "", extra: str = "", pages: int = 1, wasi: bool = False
) -> str:
    """``wasi``: also import WASI's clock and poll, as ``$subscribe`` (ns -> pollable) and
    ``$block`` (pollable) in the core module: a component that can block its thread."""
    return rf"""
(component{_WASI_IMPORTS if wasi else ""}
  (import "agentflow:agent/host@0.1.0" (instance $host
    (export "llm-complete" (func (param "request-json" string) (result (result string (error string)))))
    (export "log" (func (param "level" string) (param "message" string)))
    (export "write-file" (func (param "path" string) (param "data" string) (result (result string (error string)))))))
  (core module $Mem
    (memory (export "memory") {pages})
    (global $bump (mut i32) (i32.const 8192))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
      (local.set $p (global.get $bump))
      (global.set $bump (i32.and (i32.add (i32.add (global.get $bump) (local.get 3)) (i32.const 7)) (i32.const -8)))
      (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.div_u (local.get 3) (i32.const 65536)) (i32.const 1))))))
      (local.get $p)))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))
  (alias export $host "llm-complete" (func $llm))
  (alias export $host "log" (func $log))
  (alias export $host "write-file" (func $write))
  (core func $llm_low (canon lower (func $llm) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core func $log_low (canon lower (func $log) (memory $memory) string-encoding=utf8))
  (core func $write_low (canon lower (func $write) (memory $memory) (realloc $realloc) string-encoding=utf8)){_WASI_LOWER if wasi else ""}
  (core module $Main
    (import "env" "memory" (memory 1))
    (import "host" "llm" (func $llm (param i32 i32 i32)))
    (import "host" "log" (func $log (param i32 i32 i32 i32)))
    (import "host" "write" (func $write (param i32 i32 i32 i32 i32))){_WASI_MAIN if wasi else ""}
    {data}
    {extra}
    (func $ok (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 2048) (i32.const 0))
      (i32.store (i32.const 2052) (local.get $p))
      (i32.store (i32.const 2056) (local.get $n))
      (i32.const 2048))
    (func $err (param $p i32) (param $n i32) (result i32)
      (i32.store8 (i32.const 2048) (i32.const 1))
      (i32.store (i32.const 2052) (local.get $p))
      (i32.store (i32.const 2056) (local.get $n))
      (i32.const 2048))
    (func (export "run") (param $p i32) (param $n i32) (result i32) (local $i i32)
      {run_body}))
  (core instance $main (instantiate $Main
    (with "env" (instance (export "memory" (memory $memory))))
    (with "host" (instance (export "llm" (func $llm_low)) (export "log" (func $log_low))
                           (export "write" (func $write_low)))){_WASI_WITH if wasi else ""}))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $main "run") (memory $memory) (realloc $realloc) string-encoding=utf8)))
"""


ECHO = component("(call $ok (local.get $p) (local.get $n))")

LOGGING_ECHO = component(
    """(call $log (i32.const 100) (i32.const 4) (local.get $p) (local.get $n))
      (call $ok (local.get $p) (local.get $n))""",
    data='(data (i32.const 100) "info")',
)


# calls llm-complete(input) `count` times, returns the last answer (or the error it got)
def llm_caller(count: int) -> str:
    return component(
        f"""(local.set $i (i32.const 0))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
        (call $llm (local.get $p) (local.get $n) (i32.const 4096))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (if (result i32) (i32.eqz (i32.load8_u (i32.const 4096)))
        (then (call $ok (i32.load (i32.const 4100)) (i32.load (i32.const 4104))))
        (else (call $err (i32.load (i32.const 4100)) (i32.load (i32.const 4104)))))"""
    )


# write-file(path=input, data=input), `count` times; ok(input) unless an error came back
def writer(count: int) -> str:
    return component(
        f"""(local.set $i (i32.const 0))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
        (call $write (local.get $p) (local.get $n) (local.get $p) (local.get $n) (i32.const 4096))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (call $ok (local.get $p) (local.get $n))"""
    )


FAILING = component(
    "(call $err (i32.const 100) (i32.const 15))", data='(data (i32.const 100) "the agent broke")'
)

LOOP_FOREVER = component("(loop $l (br $l)) (unreachable)")


# a tight loop that never hits a back-edge check... it does: fuel is charged per instruction
def burner() -> str:
    return component(
        "(loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)) (unreachable)"
    )


MEMORY_HOG = component(
    """(block $full (loop $l
        (br_if $full (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
        (br $l)))
      (unreachable)"""
)

TRAPPING = component("(unreachable)")

BIG_MEMORY = component("(call $ok (local.get $p) (local.get $n))", pages=256)  # 16 MiB at start


# blocks in WASI for `seconds` (C's sleep()), then echoes: epochs cannot stop it in-process
def sleeper(seconds: float) -> str:
    return component(
        f"""(call $block (call $subscribe (i64.const {int(seconds * 1e9)})))
      (call $ok (local.get $p) (local.get $n))""",
        wasi=True,
    )


# can block (imports WASI poll) but does not: calls llm-complete `count` times like llm_caller
def isolated_llm_caller(count: int) -> str:
    return llm_caller(count).replace("(component", "(component" + _WASI_IMPORTS, 1)
