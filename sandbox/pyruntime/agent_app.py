"""The entry point of an agent built with ``agentflow build``: its own component of the
``agent`` world, with the agent's package and pure-Python dependencies inside.

``agent.py`` (with ``def run(input)``) is imported when the component is built, so its imports
are resolved then and bundled.
"""

from __future__ import annotations

import agentflow_guest

agentflow_guest._install()

import agent  # noqa: E402 - the user's agent.py, after `agentflow` exists
import wit_world  # noqa: E402


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        return agentflow_guest._call(getattr(agent, "run", None), input)
