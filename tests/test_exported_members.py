"""The public surface is a test: every package's __all__ is sorted, complete and importable."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "agentflowd",
    "agentflowd.cluster",
    "agentflowd.engine",
    "agentflowd.engine.core",
    "agentflowd.engine.states",
    "agentflowd.errors",
    "agentflowd.manifest",
    "agentflowd.manifest.model",
    "agentflowd.node",
    "agentflowd.source",
    "agentflowd.store",
    "agentflowd.store.filelock",
    "agentflowd.cli",
    "agentflowd.api.app",
    "agentflowd.api.access",
    "agentflowd.api.admin",
    "agentflowd.api.edge",
    "agentflowd.api.triggers",
    "agentflowd.engine.deliveries",
    "agentflowd.auth",
    "agentflowd.auth.authenticate",
    "agentflowd.auth.keys",
    "agentflowd.auth.oidc",
    "agentflowd.auth.principal",
    "agentflowd.auth.selector",
    "agentflowd.store.access",
    "sandbox",
    "router",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_importable(name):
    module = importlib.import_module(name)
    exported = module.__all__
    assert list(exported) == sorted(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr}"


def test_top_level_exports():
    import inspect

    import agentflowd

    lazy = {"AgentFlowClient"}  # loaded on first use (it needs httpx)
    public = {
        name
        for name, value in vars(agentflowd).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in ("annotations", "TYPE_CHECKING")
    }
    assert public | lazy == set(agentflowd.__all__) - {"__version__"}
    assert all(getattr(agentflowd, name) for name in lazy)


def test_error_hierarchy():
    from agentflowd import errors

    assert issubclass(errors.ManifestError, errors.PermanentError)
    assert issubclass(errors.RevisionNotFound, errors.SourceError)
    assert issubclass(errors.RevisionNotFound, LookupError)
    assert errors.TransientError("x", delay=3).delay == 3
    for name in errors.__all__:
        assert getattr(errors, name).__doc__, name
