"""Roles and what they may do: a ladder of four, each holding the rights of those below.

========  ==========================================================================
viewer    read: workflows, executions, events, revisions, diffs, costs
operator  + run: start, cancel and approve executions
deployer  + deploy: deploy and delete API workflows, suspend, resume, roll back, unpin,
          sync
admin     + admin: API keys, the audit log, settings
========  ==========================================================================

A ladder rather than a matrix because every role the product names includes the one below it
(a deployer who could not read what they deploy would be useless), as Argo CD's built-in
``readonly``/``admin`` and Kubernetes' ``view``/``edit``/``admin`` cluster roles are. Routes
declare the :class:`Permission` they need; a role either reaches it or does not.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Permission", "Role", "grants"]


class Permission(StrEnum):
    """What a route needs, from the weakest to the strongest."""

    READ = "read"
    RUN = "run"
    DEPLOY = "deploy"
    ADMIN = "admin"


class Role(StrEnum):
    """A key's or a signed-in user's role."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    DEPLOYER = "deployer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Its place on the ladder (viewer 0 ... admin 3)."""
        return _ROLES.index(self)

    @property
    def permission(self) -> Permission:
        """The strongest permission it holds."""
        return _PERMISSIONS[self.rank]


_ROLES = list(Role)
_PERMISSIONS = list(Permission)


def grants(role: Role, permission: Permission) -> bool:
    """Whether ``role`` may do what needs ``permission``."""
    return _PERMISSIONS.index(permission) <= role.rank
