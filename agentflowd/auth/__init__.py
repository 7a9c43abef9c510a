"""Access control: who a request is (API keys, OIDC tokens), what its role lets it do, which
workflows it may touch, and the audit log of what was done."""

from __future__ import annotations

from agentflowd.auth.principal import Principal, PrincipalKind
from agentflowd.auth.roles import Permission, Role, grants
from agentflowd.auth.selector import Selector

__all__ = ["Permission", "Principal", "PrincipalKind", "Role", "Selector", "grants"]
