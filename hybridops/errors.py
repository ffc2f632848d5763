"""The exception tree: one root, a clear split between retryable and fatal.

Domain errors carry the ids they are about. At the activity boundary they become
``ApplicationError(type=<class name>, non_retryable=<not retryable>)`` (see
:func:`activities.common.step_activity`), so a workflow never loops on a bug.
"""

from __future__ import annotations


class HybridOpsError(Exception):
    """Root of every error HybridOps raises on purpose."""

    retryable: bool = False
    """Whether trying the same thing again may succeed."""

    def __init__(self, message: str, **ids: object) -> None:
        self.ids = {k: v for k, v in ids.items() if v is not None}
        suffix = "".join(f" [{k}={v}]" for k, v in self.ids.items())
        super().__init__(message + suffix)


class RetryableError(HybridOpsError):
    """A transient condition: a server not up yet, a timeout, a lock held."""

    retryable = True


class FatalError(HybridOpsError):
    """Retrying cannot help: bad input, a wrong inventory, a violated precondition."""


class ConfigError(FatalError):
    """The inventory or settings are wrong; the message names the key."""


class InputError(FatalError):
    """A runbook input is invalid; the message names the field."""


class DatabaseUnreachable(RetryableError):
    """A PostgreSQL server did not answer."""


class DatabaseError(FatalError):
    """A PostgreSQL server answered, but not as the step requires."""


class TimelineCollision(DatabaseError):
    """A promotion took a timeline the WAL archive already holds from another server."""


class PreconditionFailed(FatalError):
    """The world is not in a state the step can safely act on."""


class DnsError(RetryableError):
    """The DNS provider failed transiently (throttled, timed out)."""


class DnsZoneNotFound(FatalError):
    """The zone the inventory names does not exist at the provider."""


class DnsRecordInvalid(FatalError):
    """The provider rejected a record as invalid."""


class DnsAuthError(FatalError):
    """The provider refused who we are or what we may do: bad or expired credentials, a key
    it does not know, a signature that does not verify, a policy that does not allow the
    change. Retrying with the same credentials cannot help."""


class CapabilityMissing(FatalError):
    """A driver lacks a capability the step needs (DESIGN.md rule 14): ids name the driver
    and the capability. A runbook checks the capabilities it needs before its first change,
    so this is raised before anything changed, never after the point of no return."""


class InjectedFault(FatalError):
    """A fault injected on purpose (lab chaos, tests); never raised in production paths."""


class SafetyRuleViolated(FatalError):
    """A safety rule blocks the step (DESIGN.md rule 12): ids name the rules and the sites.
    Only an approval that overrides the rule by name lets the step through."""


class PromotionIncomplete(DatabaseError):
    """A server accepts writes on the timeline it was a standby on: a promotion that was
    interrupted after the server left recovery and before it switched timeline. Ids name the
    site and the timeline. Fatal: a writer on the old primary's timeline collides with it in
    the WAL archive, and only a server proven to have written nothing since can be repaired."""
