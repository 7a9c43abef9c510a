"""One wasmtime Engine for all steps: fuel and epoch interruption on, one epoch ticker, and a
cache of compiled components on disk.

* **Epochs** are the wall-clock limit: a single daemon thread increments the engine's epoch every
  :data:`TICK_SECONDS`, drift-compensated (a plain ``sleep(tick)`` loop drifts +20 ms a second,
  measured), and each step's store gets a deadline of ``ceil(timeout / tick)`` ticks. It ticks
  only while some store runs code, and for a second after (:meth:`SandboxEngine.enter`): an
  idle daemon, or an idle sandbox worker process, does not wake 200 times a second.
  ``SandboxEngine(ticker=False)`` starts no ticker: whoever holds the engine advances the epoch
  (``engine.engine.increment_epoch()``), so a test can step a deadline tick by tick.
* **Fuel** is the CPU limit (see :mod:`sandbox.limits`).
* **Compiled code is cached** as ``.cwasm`` files keyed by (wasm sha256, wasmtime version, engine
  flags), in a 0700 directory that must belong to us. Deserialized files are trusted native
  code, so nothing is ever loaded from anywhere else, and a directory others can write to is
  refused. Files are written to a temporary name and renamed, so a crash leaves no torn file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

from wasmtime import Config, Engine, WasmtimeError
from wasmtime.component import Component

from sandbox.errors import CacheError, CompileError

__all__ = ["IDLE_SECONDS", "TICK_SECONDS", "SandboxEngine", "private_dir"]

TICK_SECONDS = 0.005
#: How long the ticker goes on after the last code ran before it sleeps.
IDLE_SECONDS = 1.0
_FLAGS = "fuel+epoch"


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed and make sure no one else can plant files in it.

    The directory must be ours and writable by no one else, and so must its parent (or the
    parent is sticky, like /tmp, so others cannot swap our directory for theirs): what is found
    there is loaded as native code or trusted build output.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mine = os.getuid()
    for where, must_own in ((path, True), (path.resolve().parent, False)):
        info = where.stat()
        others_write = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky = info.st_mode & stat.S_ISVTX
        owner_ok = info.st_uid == mine or (not must_own and info.st_uid == 0)
        if not owner_ok or (others_write and not (sticky and where != path)):
            raise CacheError(
                f"{where} must be owned by this user and writable by no one else: "
                "compiled code found there would run as native code"
            )
    if path.is_symlink():
        raise CacheError(f"{path} is a symlink; the cache must be a real directory")
    return path


class SandboxEngine:
    """The shared engine, its epoch ticker and compile cache. Thread-safe."""

    def __init__(
        self, cache_dir: Path | None = None, *, max_components: int = 32, ticker: bool = True
    ) -> None:
        config = Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = Engine(config)
        self.version = importlib.metadata.version("wasmtime")
        self.cache_dir = cache_dir
        self.max_components = max_components
        # compiled components in memory, least recently used first (the disk cache keeps all)
        self._components: OrderedDict[str, Component] = OrderedDict()
        self._imports: dict[str, frozenset[str]] = {}  # by key, kept with the component
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = 0  # stores running code now (instantiating or in a call)
        self._last = 0.0  # when the last of them ended (monotonic)
        self._wanted = threading.Event()  # set while _running > 0: the ticker ticks
        self._ticker = threading.Thread(target=self._tick, name="agentflow-epoch", daemon=True)
        if ticker:  # without one the epoch moves only when the owner increments it
            self._ticker.start()

    def enter(self) -> None:
        """Code that runs WebAssembly starts (pair with :meth:`leave`, in ``finally``): the
        epoch moves only while some does, and for :data:`IDLE_SECONDS` after (so steps back to
        back never wait to wake the ticker). A deadline counts ticks from when it is set, so
        a pause while nothing runs changes no step's timeout."""
        with self._lock:
            self._running += 1
            if not self._wanted.is_set():
                self._wanted.set()

    def leave(self) -> None:
        """The code :meth:`enter` announced has returned (or trapped)."""
        with self._lock:
            self._running -= 1
            self._last = time.monotonic()

    def _tick(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            if not self._wanted.is_set():
                self._wanted.wait()  # nothing runs: no ticks until something does
                deadline = time.monotonic()
                continue
            deadline += TICK_SECONDS
            delay = deadline - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:  # fell behind (a paused VM): catch up without a burst of ticks
                deadline = time.monotonic()
            self.engine.increment_epoch()
            with self._lock:
                if self._running == 0 and time.monotonic() - self._last > IDLE_SECONDS:
                    self._wanted.clear()  # idle: sleep until code runs again

    def close(self) -> None:
        """Stop the ticker."""
        self._stop.set()
        self._wanted.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=1)

    def cache_key(self, wasm: bytes) -> str:
        """Content hash + wasmtime version + engine flags: what a compiled file depends on."""
        return self.key_for_digest(hashlib.sha256(wasm).hexdigest())

    def key_for_digest(self, sha256: str) -> str:
        """:meth:`cache_key` of content whose SHA-256 (hex) is known."""
        return f"{sha256}-wasmtime{self.version}-{_FLAGS}"

    def is_cached(self, wasm: bytes) -> bool:
        """Whether ``wasm`` is compiled already (in memory or on disk): no compile needed."""
        key = self.cache_key(wasm)
        with self._lock:
            if key in self._components:
                return True
        directory = self._dir()
        return directory is not None and (directory / f"{key}.cwasm").exists()

    def load(self, wasm: bytes | str) -> Component:
        """The compiled component for ``wasm`` (binary or WAT text): from memory, disk, or now."""
        return self._load(wasm)[1]

    def load_with_imports(
        self, wasm: bytes | str, *, key: str | None = None
    ) -> tuple[Component, frozenset[str]]:
        """The compiled component and the names of the interfaces it imports (read once).

        ``key`` is :meth:`cache_key` of ``wasm`` when the caller knows it (saves hashing)."""
        key, component = self._load(wasm, key)
        with self._lock:
            names = self._imports.get(key)
        if names is None:
            names = frozenset(component.type.imports(self.engine))
            with self._lock:
                if key in self._components:  # not evicted meanwhile: keep it with the component
                    self._imports[key] = names
        return component, names

    def _load(self, wasm: bytes | str, key: str | None = None) -> tuple[str, Component]:
        data = wasm.encode() if isinstance(wasm, str) else wasm
        if key is None:
            key = self.cache_key(data)
        with self._lock:
            if key in self._components:
                self._components.move_to_end(key)
                return key, self._components[key]
        component = self._from_disk(key) or self._compile(data, key)
        with self._lock:
            self._components.setdefault(key, component)
            self._components.move_to_end(key)
            while len(self._components) > self.max_components:
                evicted, _ = self._components.popitem(last=False)
                self._imports.pop(evicted, None)
            return key, self._components[key]

    def forget(self, key: str) -> None:
        """Drop a compiled component from memory (it stays in the disk cache)."""
        with self._lock:
            self._components.pop(key, None)
            self._imports.pop(key, None)

    def _dir(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return private_dir(self.cache_dir)

    def _from_disk(self, key: str) -> Component | None:
        directory = self._dir()
        path = directory / f"{key}.cwasm" if directory else None
        if path is None or not path.exists():
            return None
        try:
            return Component.deserialize_file(self.engine, str(path))
        except WasmtimeError:
            path.unlink(missing_ok=True)  # incompatible or damaged: compile again
            return None

    def _compile(self, data: bytes, key: str) -> Component:
        try:
            component = Component(self.engine, data)
        except WasmtimeError as exc:
            lines = str(exc).strip().splitlines()
            raise CompileError(
                f"not a valid agent component: {lines[0] if lines else exc}"
            ) from exc
        directory = self._dir()
        if directory is not None:
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(component.serialize())
                os.replace(tmp, directory / f"{key}.cwasm")
            except OSError:
                Path(tmp).unlink(missing_ok=True)
        return component
