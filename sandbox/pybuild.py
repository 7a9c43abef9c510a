"""Building the python-runtime component with componentize-py (from PyPI, fully offline).

The runtime (``sandbox/pyruntime``) is built on first use into a cache directory outside the
repository, keyed by the hash of its sources, the WIT world and the componentize-py version; its
compiled form is then cached by :class:`~sandbox.engine.SandboxEngine`. Building takes ~15 s and
compiling ~15-20 s on two cores (measured), so both report progress.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sandbox.errors import SandboxError

__all__ = ["RUNTIME_DIR", "WIT_DIR", "build_runtime", "default_cache_dir"]

RUNTIME_DIR = Path(__file__).parent / "pyruntime"
WIT_DIR = Path(__file__).parent / "wit"


def default_cache_dir() -> Path:
    """``$AGENTFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/agentflow``, else ``~/.cache/agentflow``."""
    if os.environ.get("AGENTFLOW_CACHE_DIR"):
        return Path(os.environ["AGENTFLOW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentflow"


def _componentize_py() -> str:
    candidate = Path(sys.executable).parent / "componentize-py"
    found = str(candidate) if candidate.exists() else shutil.which("componentize-py")
    if not found:
        raise SandboxError(
            "componentize-py is not installed; `pip install componentize-py` (it works offline)"
        )
    return found


def runtime_key() -> str:
    """What the built runtime depends on."""
    digest = hashlib.sha256()
    for path in sorted([*RUNTIME_DIR.glob("*.py"), *WIT_DIR.glob("*.wit")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        digest.update(importlib.metadata.version("componentize-py").encode())
    except importlib.metadata.PackageNotFoundError:
        pass
    return digest.hexdigest()[:24]


def build_runtime(
    cache_dir: Path | None = None, progress: Callable[[str], None] = lambda _m: None
) -> Path:
    """The python-runtime ``.wasm``, built now if this version was never built here."""
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = cache_dir / f"python-runtime-{runtime_key()}.wasm"
    if target.exists():
        return target
    progress("building the Python agent runtime with componentize-py (first use, ~15 s)")
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".wasm.tmp")
    os.close(fd)
    command = [
        _componentize_py(),
        "-d", str(WIT_DIR),
        "-w", "python-runtime",
        "componentize", "app",
        "-p", str(RUNTIME_DIR),
        "-o", tmp,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SandboxError("building the Python runtime failed: " + " | ".join(tail))
    os.replace(tmp, target)
    progress(f"built {target.name} ({target.stat().st_size / 2**20:.1f} MiB)")
    return target
