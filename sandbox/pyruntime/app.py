"""The python-runtime component: runs an agent's source inside the sandbox.

The source is compiled and executed as module ``agent`` at every step (a fresh instance each
time), its ``run(input)`` called with the decoded input, and the result returned as JSON. Any
exception comes back as ``err`` with its traceback, so the host reports AgentError (or
MemoryLimit) rather than a bare trap.

Only modules imported here at build time exist in the image: the list below is what agents get.
"""

from __future__ import annotations

import base64  # noqa: F401
import collections  # noqa: F401
import copy  # noqa: F401
import csv  # noqa: F401
import dataclasses  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import enum  # noqa: F401
import fractions  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import html  # noqa: F401
import io  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import operator  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401
import statistics  # noqa: F401
import string  # noqa: F401
import textwrap  # noqa: F401
import time  # noqa: F401
import traceback
import types
import typing  # noqa: F401
import urllib.parse  # noqa: F401
import uuid  # noqa: F401

import agentflow_guest
import wit_world
from componentize_py_types import Err

agentflow_guest._install()


class WitWorld(wit_world.WitWorld):
    def run(self, source: str, input: str) -> str:
        module = types.ModuleType("agent")
        module.__file__ = "agent.py"
        try:
            exec(compile(source, "agent.py", "exec"), module.__dict__)  # noqa: S102 - in the sandbox
        except BaseException:
            raise Err(traceback.format_exc(limit=8)) from None
        return agentflow_guest._call(module.__dict__.get("run"), input)
