"""The Workflow manifest (``apiVersion: agentflow.io/v1``, ``kind: Workflow``) as pydantic models.

This is the desired state users write in git. Field names are camelCase in YAML (aliases) and
snake_case in Python. Every model forbids unknown fields, so a typo such as ``dependOn`` is an
error (with a "did you mean" hint added by :mod:`agentflowd.manifest.load`), never silently
ignored. Defaults are materialized on validation: a loaded model always holds every value the
engine will use, which is what makes the canonical form (:mod:`agentflowd.manifest.canonical`)
compare equal for two manifests that mean the same thing.

Quantities parse to exact integers (bytes, millicores) or ``timedelta`` and serialize back to
their canonical Kubernetes spelling, so ``1024Mi`` and ``1Gi`` are one value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from agentflowd.manifest.cron import CronSchedule, normalize_cron, parse_cron, parse_timezone
from agentflowd.manifest.images import IMAGE_PATTERN
from agentflowd.manifest.quantities import (
    format_cpu,
    format_duration,
    format_memory,
    parse_cpu,
    parse_duration,
    parse_memory,
)

__all__ = [
    "API_VERSION",
    "Agent",
    "Backoff",
    "Budget",
    "BudgetAction",
    "Conditions",
    "Config",
    "HttpMethod",
    "KIND",
    "LLMConfig",
    "LLMRouting",
    "Limits",
    "Metadata",
    "Network",
    "Provider",
    "Resources",
    "RetryPolicy",
    "Route",
    "RoutingStrategy",
    "Schedule",
    "SecretRef",
    "Trigger",
    "Webhook",
    "Workflow",
    "WorkflowSpec",
]

API_VERSION = "agentflow.io/v1"
KIND = "Workflow"


def _matching(pattern: str, explain: str, max_length: int) -> Callable[[str], str]:
    """A validator with a readable error (pydantic's would just quote the regex)."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        # fullmatch: `$` alone would let a trailing newline through ("wf\n")
        if len(value) > max_length or not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not valid: {explain}")
        return value

    return check


def _str_schema(pattern: str, max_length: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "maxLength": max_length})


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_EXPLAIN = (
    "use lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(a DNS-1123 label, at most 63 characters)"
)
DnsLabel = Annotated[
    str, AfterValidator(_matching(DNS_LABEL, _DNS_EXPLAIN, 63)), _str_schema(DNS_LABEL, 63)
]
_LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LabelKey = Annotated[
    str,
    AfterValidator(
        _matching(
            _LABEL_KEY,
            "a label key is an optional DNS prefix and '/', then letters, digits, '-', '_', '.'",
            316,
        )
    ),
    _str_schema(_LABEL_KEY, 316),
]
_LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
LabelValue = Annotated[
    str,
    AfterValidator(
        _matching(
            _LABEL_VALUE,
            "a label value is empty or letters, digits, '-', '_' and '.', at most 63 characters",
            63,
        )
    ),
    _str_schema(_LABEL_VALUE, 63),
]
_IMAGE = IMAGE_PATTERN
ImageRef = Annotated[
    str,
    AfterValidator(
        _matching(
            _IMAGE,
            "an image is a lowercase path with an optional tag, e.g. agents/classifier:v1.2",
            255,
        )
    ),
    _str_schema(_IMAGE, 255),
]
_HOST = (
    r"^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$"
    r"|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
)
_HOST_EXPLAIN = (
    "a host is a name, '*.domain', an IPv4 address or a bracketed IPv6 address, "
    "with an optional :port"
)


def _port_in_range(value: str) -> str:
    head, sep, port = value.rpartition(":")
    if sep and head and not head.endswith(":") and port.isdigit() and not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not valid: port {port} is outside 1-65535")
    return value


HostPattern = Annotated[
    str,
    AfterValidator(_matching(_HOST, _HOST_EXPLAIN, 260)),
    AfterValidator(_port_in_range),
    _str_schema(_HOST, 260),
]
_WEBHOOK_PATH = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$"
WebhookPath = Annotated[
    str,
    AfterValidator(
        _matching(
            _WEBHOOK_PATH,
            "a webhook path starts with '/' and holds no query string or fragment",
            512,
        )
    ),
    _str_schema(_WEBHOOK_PATH, 512),
]
_CREDENTIAL = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
CredentialName = Annotated[
    str,
    AfterValidator(
        _matching(_CREDENTIAL, "a credential name holds letters, digits, '_', '.' and '-'", 128)
    ),
    _str_schema(_CREDENTIAL, 128),
]

# Scalars are strict: YAML says what type a value is, and `maxTokens: "1000"` or
# `needs_json: "y"` is a mistake to report, not to coerce. Numbers must be finite.
Int = StrictInt
Bool = StrictBool
Number = Annotated[float, Strict(), AllowInfNan(False)]

# Quantities: parsed on input, written back in their canonical spelling in JSON.
Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    PlainSerializer(format_memory, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$",
                },
                {"type": "integer", "exclusiveMinimum": 0},
            ],
            "description": "Bytes, Kubernetes style: 512Mi, 1Gi, 500M or a number of bytes.",
        }
    ),
]
Cpu = Annotated[
    int,
    BeforeValidator(parse_cpu),
    PlainSerializer(format_cpu, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?m?$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "CPU, Kubernetes style: 200m (millicores), 0.5 or 1 (cores).",
        }
    ),
]
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([0-9]+(\.[0-9]+)?(ms|h|m|s))+$",
            "description": "A duration: 30s, 5m, 1h30m or 500ms.",
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        field_title_generator=lambda name, _info: to_camel(name),
    )


class Provider(enum.StrEnum):
    """LLM providers the router knows. ``mock`` is deterministic, for demos and tests."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    LOCAL = "local"
    MOCK = "mock"


class Backoff(enum.StrEnum):
    """How the delay between retries grows."""

    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class HttpMethod(enum.StrEnum):
    """HTTP methods a webhook trigger can accept."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class RoutingStrategy(enum.StrEnum):
    """How the router ranks the routes that pass the hard filters."""

    COST_OPTIMIZED = "cost-optimized"
    QUALITY_FIRST = "quality-first"
    LATENCY = "latency"
    PRIORITY = "priority"


class BudgetAction(enum.StrEnum):
    """What a call that would exceed a budget does."""

    DOWNGRADE = "downgrade"
    REFUSE = "refuse"


class Metadata(_Model):
    """Identity of a workflow: its name (unique in a repo) plus labels and annotations."""

    name: DnsLabel
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Conditions(BaseModel):
    """When a route applies. All keys of one map must match (all-of).

    Keys are snake_case as the product spec writes them. ``data_sensitivity: high`` is a hard
    filter: such requests never leave ``local`` providers, whatever the fallbacks say.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    complexity: Literal["low", "medium", "high"] | None = None
    accuracy: Literal["standard", "high", "critical"] | None = None
    cost: Literal["minimal", "normal", "priority"] | None = None
    data_sensitivity: Literal["low", "medium", "high"] | None = None
    needs_json: Bool | None = None
    needs_tools: Bool | None = None


class LLMConfig(_Model):
    """The model an agent asks for; the router may still pick another under ``llmRouting``."""

    provider: Provider
    model: str = Field(min_length=1, max_length=200)
    temperature: Number | None = Field(default=None, ge=0, le=2)
    max_tokens: Int | None = Field(default=None, gt=0, le=1_000_000)
    features: Conditions | None = Field(
        default=None,
        description="What this agent's calls are like, for llmRouting conditions; "
        "data_sensitivity: high keeps them on local or trusted providers.",
    )


class Resources(_Model):
    """Sandbox limits of one agent step: memory, CPU share, wall-clock timeout, scratch storage."""

    memory: Memory = Field(default="256Mi", validate_default=True)
    cpu: Cpu = Field(default="1", validate_default=True)
    timeout: Duration = Field(default="60s", validate_default=True)
    storage: Memory = Field(default="64Mi", validate_default=True)


class Limits(_Model):
    """Counted host calls of one agent step; a step that exceeds one fails with LimitExceeded."""

    llm_calls: Int = Field(default=100, ge=0, le=1_000_000)
    network_requests: Int = Field(default=100, ge=0, le=1_000_000)
    file_operations: Int = Field(default=1000, ge=0, le=10_000_000)


class Network(_Model):
    """Hosts an agent may reach over HTTP; empty means no network at all."""

    allow: tuple[HostPattern, ...] = ()

    @field_validator("allow")
    @classmethod
    def _canonical_order(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A set in meaning: sorted and de-duplicated so order never causes a diff.
        return tuple(sorted({v.lower() for v in value}))


class RetryPolicy(_Model):
    """Retries of transient failures: attempts in all (1 = no retry) and the backoff."""

    max_attempts: Int = Field(default=3, ge=1, le=100)
    backoff: Backoff = Backoff.EXPONENTIAL
    initial_delay: Duration = Field(default="1s", validate_default=True)
    max_delay: Duration = Field(default="5m", validate_default=True)

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError("maxDelay must not be shorter than initialDelay")
        return self


def _retry_from_str(value: object) -> object:
    # `retryPolicy: exponential` is shorthand for `retryPolicy: {backoff: exponential}`.
    return {"backoff": value} if isinstance(value, str) else value


RetryPolicyInput = Annotated[
    RetryPolicy,
    BeforeValidator(_retry_from_str, json_schema_input_type=Backoff | RetryPolicy),
]


class Agent(_Model):
    """One step of the workflow DAG: a sandboxed agent image with its limits and dependencies."""

    name: DnsLabel
    image: ImageRef
    llm: LLMConfig | None = None
    resources: Resources = Field(default_factory=Resources)
    limits: Limits = Field(default_factory=Limits)
    network: Network = Field(default_factory=Network)
    retry: RetryPolicyInput | None = Field(
        default=None,
        description="Retries of this agent; inherits spec.config.retryPolicy when omitted.",
    )
    depends_on: tuple[DnsLabel, ...] = ()

    @field_validator("depends_on")
    @classmethod
    def _canonical_deps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A set in meaning: sorted and de-duplicated so order never causes a diff.
        return tuple(sorted(set(value)))


class SecretRef(_Model):
    """A secret by name, resolved by the daemon from its environment or systemd credentials."""

    name: CredentialName


def _true_or_none(value: bool | None) -> bool | None:
    # `unsigned: false` says what leaving it out says: one canonical form, one hash
    return True if value else None


class Webhook(_Model):
    """An HTTP endpoint that starts an execution; the body becomes the execution's input.

    Signed with ``secretRef``, or explicitly ``unsigned: true``: one of the two is required
    (checked by :mod:`agentflowd.manifest.checks`, which names the line)."""

    path: WebhookPath
    method: HttpMethod = HttpMethod.POST
    secret_ref: SecretRef | None = None
    unsigned: Annotated[Bool | None, AfterValidator(_true_or_none)] = Field(
        default=None,
        description="Accept calls without a signature: anyone who reaches the daemon can "
        "start executions. A webhook without secretRef must say unsigned: true.",
    )


class Schedule(_Model):
    """A cron schedule (crontab(5) syntax) in an IANA time zone."""

    cron: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        normalize_cron(value)  # validates; the trigger is built only when needed
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    def compile(self) -> CronSchedule:
        """The schedule as an evaluable trigger (for next fire times)."""
        return parse_cron(self.cron, self.timezone)


def _schedule_from_str(value: object) -> object:
    # `schedule: "0 9 * * 1-5"` is shorthand for `schedule: {cron: "0 9 * * 1-5"}`.
    return {"cron": value} if isinstance(value, str) else value


class Trigger(_Model):
    """What starts an execution: exactly one of ``webhook`` or ``schedule``."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    webhook: Webhook | None = None
    schedule: (
        Annotated[
            Schedule, BeforeValidator(_schedule_from_str, json_schema_input_type=str | Schedule)
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        if (self.webhook is None) == (self.schedule is None):
            raise ValueError("a trigger has exactly one of 'webhook' or 'schedule'")
        return self


class Config(_Model):
    """Execution settings of the whole workflow."""

    max_concurrent_executions: Int = Field(default=10, ge=1, le=10_000)
    default_timeout: Duration = Field(
        default="30m", validate_default=True, description="Deadline of a whole execution."
    )
    retry_policy: RetryPolicyInput = Field(default_factory=RetryPolicy)


def _conditions_as_list(value: object) -> object:
    # A single map means all-of; a list of maps means any-of. One map == a list of one.
    return [value] if isinstance(value, dict) else value


def _always_if_any_empty(value: tuple[Conditions, ...]) -> tuple[Conditions, ...]:
    # An empty map matches every request, so a list holding one is the same as no conditions.
    return () if any(not c.model_fields_set for c in value) else value


class Route(_Model):
    """A provider and model the router may use, and when (``conditions``; none = always)."""

    provider: Provider
    model: str = Field(min_length=1, max_length=200)
    conditions: Annotated[
        tuple[Conditions, ...],
        BeforeValidator(_conditions_as_list, json_schema_input_type=Conditions | list[Conditions]),
        AfterValidator(_always_if_any_empty),
    ] = ()


class LLMRouting(_Model):
    """How the router picks among routes; ``fallbacks`` are tried in order."""

    strategy: RoutingStrategy = RoutingStrategy.COST_OPTIMIZED
    fallbacks: tuple[Route, ...] = ()


class Budget(_Model):
    """Spending caps in USD; a call that would cross one is downgraded or refused."""

    currency: Literal["USD"] = "USD"
    per_execution: Number | None = Field(default=None, ge=0)
    per_day: Number | None = Field(default=None, ge=0)
    per_month: Number | None = Field(default=None, ge=0)
    on_exceeded: BudgetAction = BudgetAction.DOWNGRADE


class WorkflowSpec(_Model):
    """The desired state of a workflow: its agents (a DAG), triggers and policies."""

    agents: tuple[Agent, ...] = Field(min_length=1, max_length=500)
    triggers: tuple[Trigger, ...] = ()
    config: Config = Field(default_factory=Config)
    llm_routing: LLMRouting | None = None
    budget: Budget | None = None

    @model_validator(mode="after")
    def _inherit_retry(self) -> WorkflowSpec:
        # Materialize the inherited default so the canonical form is explicit.
        if any(agent.retry is None for agent in self.agents):
            agents = tuple(
                agent
                if agent.retry is not None
                else agent.model_copy(update={"retry": self.config.retry_policy})
                for agent in self.agents
            )
            object.__setattr__(self, "agents", agents)
        return self


class Workflow(_Model):
    """A ``kind: Workflow`` manifest."""

    model_config = ConfigDict(
        title="AgentFlow Workflow",
        json_schema_extra={"description": "An AgentFlow workflow manifest (agentflow.io/v1)."},
    )

    api_version: Literal["agentflow.io/v1"]
    kind: Literal["Workflow"]
    metadata: Metadata
    spec: WorkflowSpec

    @property
    def name(self) -> str:
        """The workflow's name (``metadata.name``)."""
        return str(self.metadata.name)
