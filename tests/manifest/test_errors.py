"""Every error kind, table-driven: one mutation of a valid manifest -> one precise diagnostic."""

from __future__ import annotations

import pytest

from agentflowd.manifest import Diagnostic, Limits, SourceFile, load_sources
from tests.manifests import VALID


def diagnose(data: str | bytes, limits: Limits | None = None) -> list[Diagnostic]:
    raw = data.encode() if isinstance(data, str) else data
    return load_sources([SourceFile(path="wf.yaml", data=raw)], limits).errors


def mutate(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


CYCLE = mutate(
    "      image: agents/classifier:v1.2\n",
    "      image: agents/classifier:v1.2\n      dependsOn: [review]\n",
)

# (manifest text, code, line, col, path, fragment of the message)
CASES = [
    pytest.param(
        mutate("dependsOn: [respond]", "dependOn: [respond]"),
        "schema-extra-forbidden",
        28,
        7,
        "spec.agents[2].dependOn",
        "did you mean 'dependsOn'?",
        id="unknown-field-typo",
    ),
    pytest.param(
        mutate("maxTokens: 1000", "max_tokens: 1000"),
        "schema-extra-forbidden",
        25,
        9,
        "spec.agents[1].llm.max_tokens",
        "did you mean 'maxTokens'?",
        id="unknown-field-snake-case",
    ),
    pytest.param(
        mutate("      image: agents/qa:v0.8\n", ""),
        "schema-missing",
        26,
        7,
        "spec.agents[2].image",
        "missing required field 'image'",
        id="missing-field",
    ),
    pytest.param(
        mutate("name: support", "name: Support_1"),
        "schema-value-error",
        4,
        9,
        "metadata.name",
        "DNS-1123",
        id="name-not-dns-label",
    ),
    pytest.param(
        mutate("memory: 512Mi", "memory: 512m"),
        "schema-value-error",
        16,
        17,
        "spec.agents[0].resources.memory",
        "did you mean 512Mi?",
        id="memory-milli",
    ),
    pytest.param(
        mutate("cpu: 200m", "cpu: 2 cores"),
        "schema-value-error",
        17,
        14,
        "spec.agents[0].resources.cpu",
        "not a CPU quantity",
        id="cpu-garbage",
    ),
    pytest.param(
        mutate("timeout: 30s", "timeout: 30"),
        "schema-value-error",
        18,
        18,
        "spec.agents[0].resources.timeout",
        "has no unit",
        id="duration-without-unit",
    ),
    pytest.param(
        mutate("provider: openai", "provider: opnai"),
        "schema-enum",
        12,
        19,
        "spec.agents[0].llm.provider",
        "did you mean 'openai'?",
        id="unknown-provider",
    ),
    pytest.param(
        mutate("temperature: 0.1", "temperature: 3"),
        "schema-less-than-equal",
        14,
        22,
        "spec.agents[0].llm.temperature",
        "less than or equal",
        id="temperature-range",
    ),
    pytest.param(
        mutate("agentflow.io/v1", "agentflow.io/v2"),
        "schema-literal-error",
        1,
        13,
        "apiVersion",
        "use 'agentflow.io/v1'",
        id="api-version",
    ),
    pytest.param(
        mutate("kind: Workflow", "kind: Workfow"),
        "schema-literal-error",
        2,
        7,
        "kind",
        "use 'Workflow'",
        id="kind",
    ),
    pytest.param(
        mutate('"0 9 * * 1-5"', '"0 9 * * 1-8"'),
        "schema-value-error",
        34,
        17,
        "spec.triggers[1].schedule",
        "day of week",
        id="cron-field",
    ),
    pytest.param(
        mutate('schedule: "0 9 * * 1-5"', "schedule: {cron: '0 9 * *'}"),
        "schema-value-error",
        34,
        24,
        "spec.triggers[1].schedule.cron",
        "expected 5 fields",
        id="cron-field-count",
    ),
    pytest.param(
        mutate('schedule: "0 9 * * 1-5"', "schedule: {cron: '@daily', timezone: Europe/Berln}"),
        "schema-value-error",
        34,
        44,
        "spec.triggers[1].schedule.timezone",
        "did you mean 'Europe/Berlin'?",
        id="timezone",
    ),
    pytest.param(
        mutate("dependsOn: [respond]", "dependsOn: [responder]"),
        "unknown-dependency",
        28,
        19,
        "spec.agents[2].dependsOn[0]",
        "did you mean 'respond'?",
        id="unknown-dependency",
    ),
    pytest.param(
        CYCLE,
        "dependency-cycle",
        22,
        19,
        "spec.agents[1].dependsOn[0]",
        "dependency cycle: classify -> review -> respond -> classify",
        id="cycle",
    ),
    pytest.param(
        mutate("dependsOn: [respond]", "dependsOn: [review]"),
        "dependency-cycle",
        28,
        19,
        "spec.agents[2].dependsOn[0]",
        "dependency cycle: review -> review",
        id="self-dependency",
    ),
    pytest.param(
        mutate("- name: review", "- name: classify").replace("[respond]", "[]"),
        "duplicate-agent",
        26,
        13,
        "spec.agents[2].name",
        "also spec.agents[0], line 9",
        id="duplicate-agent",
    ),
    pytest.param(
        mutate("    team: cs\n", "    team: cs\n    team: ops\n"),
        "yaml-duplicate-key",
        7,
        5,
        "metadata.labels.team",
        "first defined at line 6",
        id="duplicate-key",
    ),
    pytest.param(
        mutate("method: POST", "method: FETCH"),
        "schema-enum",
        32,
        17,
        "spec.triggers[0].webhook.method",
        "'FETCH' is not one of",
        id="webhook-method",
    ),
    pytest.param(
        mutate("path: /hooks/support", "path: hooks/support"),
        "schema-value-error",
        31,
        15,
        "spec.triggers[0].webhook.path",
        "starts with '/'",
        id="webhook-path",
    ),
    pytest.param(
        mutate(
            "        secretRef: {name: support-hook}\n",
            "        secretRef: {name: support-hook}\n      schedule: '@daily'\n",
        ),
        "schema-value-error",
        30,
        7,
        "spec.triggers[0]",
        "exactly one of 'webhook' or 'schedule'",
        id="trigger-both-kinds",
    ),
    pytest.param(
        mutate("maxConcurrentExecutions: 10", "maxConcurrentExecutions: 0"),
        "schema-greater-than-equal",
        36,
        30,
        "spec.config.maxConcurrentExecutions",
        "greater than or equal to 1",
        id="concurrency-range",
    ),
    pytest.param(
        mutate("maxConcurrentExecutions: 10", "maxConcurrentExecutions: ten"),
        "schema-int-type",
        36,
        30,
        "spec.config.maxConcurrentExecutions",
        "(got 'ten')",
        id="wrong-type",
    ),
    pytest.param(
        mutate("retryPolicy: exponential", "retryPolicy: exponentail"),
        "schema-enum",
        38,
        18,
        "spec.config.retryPolicy",
        "did you mean 'exponential'?",
        id="retry-backoff",
    ),
    pytest.param(
        mutate("    team: cs\n", "    team: 'bad value!'\n"),
        "schema-value-error",
        6,
        11,
        "metadata.labels.team",
        "label value",
        id="label-value",
    ),
    pytest.param(
        mutate("    team: cs\n", "    Team Name: cs\n"),
        "schema-value-error",
        6,
        5,
        "metadata.labels.Team Name",
        "label key",
        id="label-key",
    ),
    pytest.param(
        mutate(
            "      dependsOn: [respond]\n",
            "      dependsOn: [respond]\n      network: {allow: ['http://x.com']}\n",
        ),
        "schema-value-error",
        29,
        25,
        "spec.agents[2].network.allow[0]",
        "a host is a name",
        id="network-host",
    ),
    pytest.param(
        VALID + "  budget: {perDay: -1}\n",
        "schema-greater-than-equal",
        39,
        20,
        "spec.budget.perDay",
        "greater than or equal to 0",
        id="budget-negative",
    ),
    pytest.param(
        VALID
        + "  llmRouting:\n    fallbacks:\n"
        + "      - {provider: local, model: m, conditions: {data_sensitivty: high}}\n",
        "schema-extra-forbidden",
        41,
        50,
        "spec.llmRouting.fallbacks[0].conditions.data_sensitivty",
        "did you mean 'data_sensitivity'?",
        id="routing-condition-key",
    ),
    pytest.param(
        VALID + "  llmRouting:\n    strategy: cheapest\n",
        "schema-enum",
        40,
        15,
        "spec.llmRouting.strategy",
        "'cheapest' is not one of",
        id="routing-strategy",
    ),
    pytest.param(
        mutate("image: agents/qa:v0.8", "image: Agents/QA"),
        "schema-value-error",
        27,
        14,
        "spec.agents[2].image",
        "lowercase path",
        id="image-ref",
    ),
    pytest.param(
        "- just\n- a list\n",
        "not-a-mapping",
        1,
        1,
        "",
        "a manifest is a mapping",
        id="not-a-mapping",
    ),
    pytest.param(
        mutate("dependsOn: [classify]", "dependsOn: [classify"),
        "yaml-syntax",
        22,
        10,
        "",
        "YAML syntax error",
        id="yaml-syntax",
    ),
    pytest.param(
        mutate("\n    team: cs", "\n\tteam: cs"),
        "yaml-syntax",
        6,
        1,
        "",
        "tab character in indentation",
        id="tab-indent",
    ),
    pytest.param(
        mutate("team: cs", "team: !!python/object:os.system cs"),
        "yaml-tag",
        6,
        11,
        "",
        "unsupported YAML tag",
        id="unsafe-tag",
    ),
    pytest.param(
        VALID.encode().replace(b"team: cs", b"team: c\xffs"),
        "not-utf8",
        6,
        12,
        "",
        "not valid UTF-8",
        id="not-utf8",
    ),
    pytest.param(
        mutate("dependsOn: [respond]", "dependsOn: *nowhere"),
        "yaml-alias",
        28,
        18,
        "",
        "unknown alias *nowhere",
        id="unknown-alias",
    ),
    pytest.param(
        mutate("maxTokens: 1000", 'maxTokens: "1000"'),
        "schema-int-type",
        25,
        20,
        "spec.agents[1].llm.maxTokens",
        "(got '1000')",
        id="no-string-to-int-coercion",
    ),
    pytest.param(
        mutate("maxConcurrentExecutions: 10", "maxConcurrentExecutions: true"),
        "schema-int-type",
        36,
        30,
        "spec.config.maxConcurrentExecutions",
        "valid integer",
        id="no-bool-to-int-coercion",
    ),
    pytest.param(
        mutate("name: support", 'name: "support\n"'),
        "schema-value-error",
        4,
        9,
        "metadata.name",
        "DNS-1123",
        id="trailing-newline-in-name",
    ),
    pytest.param(
        mutate("maxConcurrentExecutions: 10", "maxConcurrentExecutions: !!int ten"),
        "yaml-bad-scalar",
        36,
        30,
        "",
        "'ten' is not a valid int",
        id="bad-explicit-tag",
    ),
    pytest.param(
        mutate("maxConcurrentExecutions: 10", "maxConcurrentExecutions: " + "9" * 5000),
        "yaml-bad-scalar",
        36,
        30,
        "",
        "is not a valid int",
        id="int-past-digit-limit",
    ),
    pytest.param(
        mutate("cpu: 200m", "cpu: .inf"),
        "schema-value-error",
        17,
        14,
        "spec.agents[0].resources.cpu",
        "not a CPU quantity",
        id="infinite-cpu",
    ),
    pytest.param(
        mutate("timeout: 30s", "timeout: 99999999999999h"),
        "schema-value-error",
        18,
        18,
        "spec.agents[0].resources.timeout",
        "longer than 366 days",
        id="huge-duration",
    ),
    pytest.param(
        mutate(
            'schedule: "0 9 * * 1-5"', "schedule: {cron: '@daily', timezone: " + "x" * 300 + "}"
        ),
        "schema-value-error",
        34,
        44,
        "spec.triggers[1].schedule.timezone",
        "unknown time zone",
        id="overlong-timezone",
    ),
    pytest.param(
        mutate('schedule: "0 9 * * 1-5"', "schedule: {cron: '@daily', timezone: localtime}"),
        "schema-value-error",
        34,
        44,
        "spec.triggers[1].schedule.timezone",
        "IANA name",
        id="host-timezone",
    ),
    pytest.param(
        mutate('"0 9 * * 1-5"', '"0 0 30 2 *"'),
        "schema-value-error",
        34,
        17,
        "spec.triggers[1].schedule",
        "never fires",
        id="cron-never-fires",
    ),
    pytest.param(
        mutate(
            "      dependsOn: [respond]\n",
            "      dependsOn: [respond]\n      network: {allow: ['a.com:99999']}\n",
        ),
        "schema-value-error",
        29,
        25,
        "spec.agents[2].network.allow[0]",
        "outside 1-65535",
        id="port-range",
    ),
    pytest.param(
        VALID + "  budget: {perDay: .inf}\n",
        "schema-finite-number",
        39,
        20,
        "spec.budget.perDay",
        "finite number",
        id="infinite-budget",
    ),
    pytest.param(
        mutate("    team: cs\n", '    team: "日本語😀\x01"\n'),
        "yaml-syntax",
        6,
        16,
        "",
        "U+0001",
        id="control-char-after-non-ascii",
    ),
]


@pytest.mark.parametrize(("text", "code", "line", "col", "path", "fragment"), CASES)
def test_one_precise_diagnostic(text, code, line, col, path, fragment):
    errors = diagnose(text)
    assert len(errors) == 1, "\n".join(d.format() for d in errors)
    (diag,) = errors
    assert (diag.code, diag.line, diag.col, diag.path) == (code, line, col, path), diag.format()
    assert fragment in diag.message
    assert diag.format().startswith(f"wf.yaml:{line}:{col}: error: ")


def test_the_valid_manifest_is_valid(valid_text):
    assert diagnose(valid_text) == []


def test_all_errors_of_a_file_are_reported():
    text = (
        mutate("dependsOn: [respond]", "dependOn: [respond]")
        .replace("memory: 512Mi", "memory: 512m")
        .replace("provider: openai", "provider: opnai")
        .replace("dependsOn: [classify]", "dependsOn: [clasify]")
        .replace("1-5", "1-9")
    )
    codes = sorted(d.code for d in diagnose(text))
    assert codes == [
        "schema-enum",
        "schema-extra-forbidden",
        "schema-value-error",
        "schema-value-error",
        "unknown-dependency",
    ]


def test_documents_before_a_syntax_error_are_still_checked():
    text = mutate("memory: 512Mi", "memory: 512m") + "---\nkey: [unclosed\n"
    report = load_sources([SourceFile(path="wf.yaml", data=text.encode())])
    assert [d.code for d in report.errors] == ["schema-value-error", "yaml-syntax"]
    assert report.workflows() == []


def test_file_too_large_is_refused_before_parsing():
    errors = diagnose(VALID, Limits(max_bytes=100))
    assert [(d.code, d.line) for d in errors] == [("file-too-large", 0)]
    assert errors[0].format().startswith("wf.yaml: error: file is ")


def test_unreadable_source_is_one_file_level_error():
    report = load_sources([SourceFile(path="x.yaml", error="symlink refused", code="symlink")])
    assert [d.format() for d in report.errors] == ["x.yaml: error: symlink refused"]
