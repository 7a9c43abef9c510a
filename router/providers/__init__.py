"""Provider clients: one wire format each, one attempt per call, every failure classified."""

from __future__ import annotations

from router.providers.anthropic import AnthropicProvider
from router.providers.base import Provider
from router.providers.openai import OpenAIProvider

__all__ = ["AnthropicProvider", "OpenAIProvider", "Provider"]
