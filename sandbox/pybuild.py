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

from sandbox.engine import private_dir
from sandbox.errors import SandboxError

__all__ = ["RUNTIME_DIR", "WIT_DIR", "build_agent", "build_runtime", "default_cache_dir"]

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


def _componentize(args: list[str], what: str) -> None:
    command = [_componentize_py(), "-d", str(WIT_DIR), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
        raise SandboxError(f"building {what} failed: " + " | ".join(tail))


def build_agent(
    source_dir: Path,
    output: Path | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Package ``source_dir`` (``agent.py`` + its modules) into a component of the agent world.

    Pure-Python packages importable by this interpreter (the active virtualenv) are bundled
    when ``agent.py`` imports them; native extensions cannot run in wasm.
    """
    if not (source_dir / "agent.py").is_file():
        raise SandboxError(f"{source_dir} has no agent.py")
    output = output or source_dir / "agent.wasm"
    progress(f"building {output} with componentize-py (~15 s)")
    with tempfile.TemporaryDirectory() as staging:
        for name in ("agent_app.py", "agentflow_guest.py"):
            shutil.copy(RUNTIME_DIR / name, Path(staging) / name)
        tmp = output.with_name(output.name + ".tmp")
        paths = ["-p", staging, "-p", str(source_dir)]
        paths += [arg for p in sys.path if p and Path(p).is_dir() for arg in ("-p", p)]
        try:
            _componentize(
                ["-w", "agent", "componentize", "agent_app", *paths, "-o", str(tmp)],
                f"{source_dir}",
            )
        except SandboxError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, output)
    progress(f"built {output} ({output.stat().st_size / 2**20:.1f} MiB)")
    return output


def build_runtime(
    cache_dir: Path | None = None, progress: Callable[[str], None] = lambda _m: None
) -> Path:
    """The python-runtime ``.wasm``, built now if this version was never built here."""
    cache_dir = private_dir(cache_dir or default_cache_dir())
    target = cache_dir / f"python-runtime-{runtime_key()}.wasm"
    if target.exists():
        return target
    progress("building the Python agent runtime with componentize-py (first use, ~15 s)")
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".wasm.tmp")
    os.close(fd)
    try:
        _componentize(
            ["-w", "python-runtime", "componentize", "app", "-p", str(RUNTIME_DIR), "-o", tmp],
            "the Python runtime",
        )
    except SandboxError:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    progress(f"built {target.name} ({target.stat().st_size / 2**20:.1f} MiB)")
    return target
