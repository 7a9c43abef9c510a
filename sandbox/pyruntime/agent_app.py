"""The entry point of an agent built with ``agentflow build``: its own component of the
``agent`` world, with the agent's package and pure-Python dependencies inside.

``agent.py`` (with ``def run(input)``) is imported when the component is built, so its imports
are resolved then and bundled.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import agentflow_guest

sys.modules["agentflow"] = agentflow_guest


def _sleep(seconds: float) -> None:
    # WASI's sleep blocks in the host, out of reach of the epoch deadline and fuel: spin.
    end = time.monotonic() + max(0.0, float(seconds))
    while time.monotonic() < end:
        pass


time.sleep = _sleep

import agent  # noqa: E402 - the user's agent.py, after `agentflow` exists
import wit_world  # noqa: E402
from componentize_py_types import Err  # noqa: E402


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        entry = getattr(agent, "run", None)
        if not callable(entry):
            raise Err("agent.py defines no run(input) function")
        try:
            return json.dumps(entry(json.loads(input)))
        except Err:
            raise
        except MemoryError:
            raise Err("MemoryError: the agent ran out of memory") from None
        except BaseException:
            raise Err(traceback.format_exc(limit=8)) from None
