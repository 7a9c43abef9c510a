"""Who a request is: a principal with a role and, for a limited key, a label selector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from agentflowd.auth.roles import Permission, Role, grants
from agentflowd.auth.selector import Selector

__all__ = ["Principal", "PrincipalKind"]


class PrincipalKind(StrEnum):
    """How the principal proved who it is (the prefix of its audit actor)."""

    KEY = "key"
    OIDC = "oidc"
    LOCAL = "local"  # a command run on the daemon's host against its database
    GIT = "git"  # a change applied from a commit


@dataclass(frozen=True, kw_only=True)
class Principal:
    """An authenticated caller."""

    kind: PrincipalKind
    name: str  # the key's name, the OIDC subject's email or subject, the OS user
    role: Role
    selector: Selector | None = None
    key_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names it: ``key:ci-bot``, ``oidc:alice@example.com``."""
        return f"{self.kind.value}:{self.name}"

    @property
    def limited(self) -> bool:
        """Whether a selector limits the workflows it may touch."""
        return self.selector is not None and bool(self.selector.requirements)

    def may(self, permission: Permission) -> bool:
        """Whether its role reaches ``permission``."""
        return grants(self.role, permission)

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a workflow with ``labels`` is within its reach."""
        return self.selector is None or self.selector.matches(labels)
