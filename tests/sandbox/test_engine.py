"""The engine's compile cache: ours only, keyed by content, version and flags, crash-safe."""

from __future__ import annotations

import os

import pytest

from sandbox import CacheError, CompileError, SandboxEngine
from tests.sandbox import wat


def test_compiled_components_are_cached_on_disk_and_reused(tmp_path):
    cache = tmp_path / "cache"
    first = SandboxEngine(cache)
    first.load(wat.ECHO)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.endswith(f"-wasmtime{first.version}-fuel+epoch.cwasm")
    assert cache.stat().st_mode & 0o777 == 0o700
    assert first.load(wat.ECHO) is first.load(wat.ECHO)  # in memory too
    first.close()
    second = SandboxEngine(cache)
    mtime = files[0].stat().st_mtime_ns
    assert second.load(wat.ECHO) is not None
    assert files[0].stat().st_mtime_ns == mtime  # read, not rewritten
    second.close()


def test_a_damaged_cache_file_is_recompiled(tmp_path):
    cache = tmp_path / "cache"
    engine = SandboxEngine(cache)
    key = engine.cache_key(wat.ECHO.encode())
    cache.mkdir(mode=0o700)
    (cache / f"{key}.cwasm").write_bytes(b"garbage")
    assert engine.load(wat.ECHO) is not None
    assert (cache / f"{key}.cwasm").read_bytes() != b"garbage"
    engine.close()


def test_a_cache_directory_others_can_write_is_refused(tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir()
    os.chmod(cache, 0o777)  # noqa: S103 - the point of the test
    engine = SandboxEngine(cache)
    with pytest.raises(CacheError, match="writable by no one else"):
        engine.load(wat.ECHO)
    engine.close()


def test_garbage_is_a_compile_error(tmp_path):
    engine = SandboxEngine()
    with pytest.raises(CompileError, match="not a valid agent component"):
        engine.load(b"\x00asm garbage")
    engine.close()


def test_a_cache_inside_a_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # noqa: S103 - the point of the test
    engine = SandboxEngine(shared / "compiled")
    with pytest.raises(CacheError, match="writable by no one else"):
        engine.load(wat.ECHO)
    engine.close()
    from sandbox.pybuild import build_runtime

    with pytest.raises(CacheError):
        build_runtime(shared / "built")
