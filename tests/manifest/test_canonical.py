"""Canonical form: the hash changes exactly when the meaning does.

Property tests generate valid manifests, then rewrite them in ways that keep their meaning (key
order, comments, defaults written out, other quantity spellings, set-like lists reordered) and
check that the model and the hash do not change; and that a change of meaning changes the hash.
"""

from __future__ import annotations

import io
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from agentflowd.manifest import SourceFile, Workflow, canonical_dict, load_sources, spec_hash
from tests.manifests import VALID

LABEL = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)


def memory_spellings(num_bytes: int) -> list[Any]:
    out: list[Any] = [num_bytes]
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30)):
        if num_bytes % factor == 0:
            out.append(f"{num_bytes // factor}{suffix}")
    return out


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(LABEL, min_size=1, max_size=5, unique=True))
    agents = []
    for i, name in enumerate(names):
        agent: dict[str, Any] = {
            "name": name,
            "image": draw(st.sampled_from(["agents/a:v1", "x/y", "agents/b:v2.0"])),
        }
        if i and draw(st.booleans()):
            agent["dependsOn"] = draw(st.lists(st.sampled_from(names[:i]), min_size=1, unique=True))
        if draw(st.booleans()):
            llm: dict[str, Any] = {
                "provider": draw(st.sampled_from(["openai", "anthropic", "local", "mock"])),
                "model": draw(LABEL),
            }
            if draw(st.booleans()):
                llm["temperature"] = draw(st.sampled_from([0, 0.1, 0.7, 1.5]))
            agent["llm"] = llm
        if draw(st.booleans()):
            mib = draw(st.integers(1, 4096))
            agent["resources"] = {
                "memory": draw(st.sampled_from(memory_spellings(mib * 2**20))),
                "cpu": draw(st.sampled_from(["100m", "500m", "1", "1000m", 2, 0.5])),
                "timeout": draw(st.sampled_from(["30s", "300s", "5m", "1h", "90m", "1h30m"])),
            }
        if draw(st.booleans()):
            agent["network"] = {
                "allow": draw(
                    st.lists(st.sampled_from(["a.com", "*.b.org", "10.0.0.1:8080"]), unique=True)
                )
            }
        if draw(st.booleans()):
            agent["retry"] = {
                "maxAttempts": draw(st.integers(1, 9)),
                "backoff": draw(st.sampled_from(["fixed", "linear", "exponential"])),
            }
        agents.append(agent)
    spec: dict[str, Any] = {"agents": agents}
    triggers: list[dict[str, Any]] = []
    for j in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            triggers.append(
                {
                    "webhook": {
                        "path": f"/hooks/{j}",
                        "method": draw(st.sampled_from(["POST", "PUT"])),
                        **draw(st.sampled_from([{"unsigned": True}, {"secretRef": {"name": "h"}}])),
                    }
                }
            )
        else:
            cron = draw(st.sampled_from(["0 9 * * 1-5", "@daily", "*/5 * * * *"]))
            triggers.append(
                {"schedule": cron}
                if draw(st.booleans())
                else {"schedule": {"cron": cron, "timezone": "Europe/Paris"}}
            )
    if triggers:
        spec["triggers"] = triggers
    if draw(st.booleans()):
        spec["config"] = {
            "maxConcurrentExecutions": draw(st.integers(1, 50)),
            "retryPolicy": draw(st.sampled_from(["fixed", "exponential"])),
        }
    if draw(st.booleans()):
        spec["llmRouting"] = {
            "strategy": "cost-optimized",
            "fallbacks": [
                {
                    "provider": "local",
                    "model": "llama-3-8b",
                    "conditions": draw(
                        st.sampled_from(
                            [
                                {"cost": "minimal"},
                                [{"complexity": "low"}, {"data_sensitivity": "high"}],
                            ]
                        )
                    ),
                }
            ],
        }
    if draw(st.booleans()):
        spec["budget"] = {"perDay": draw(st.sampled_from([1, 2.5, 100]))}
    return {
        "apiVersion": "agentflow.io/v1",
        "kind": "Workflow",
        "metadata": {"name": draw(LABEL)},
        "spec": spec,
    }


def to_yaml(data: Any, *, comments: bool = False) -> str:
    yaml = YAML(typ="safe", pure=False)
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    if comments:
        text = "# leading comment\n" + "".join(f"{line}  # note\n" for line in text.splitlines())
    return text


def load_one(text: str) -> Workflow:
    report = load_sources([SourceFile(path="w.yaml", data=text.encode())])
    assert report.valid, [d.format() for d in report.diagnostics]
    (workflow,) = report.workflows()
    return workflow


def shuffled(data: Any, rnd: random.Random) -> Any:
    if isinstance(data, dict):
        keys = list(data)
        rnd.shuffle(keys)
        return {k: shuffled(data[k], rnd) for k in keys}
    if isinstance(data, list):
        return [shuffled(v, rnd) for v in data]
    return data


@settings(max_examples=80, deadline=None)
@given(manifests())
def test_model_to_yaml_to_model_is_stable(raw):
    first = load_one(to_yaml(raw))
    second = load_one(to_yaml(first.model_dump(mode="json", exclude_none=True)))
    assert second == first
    third = load_one(to_yaml(canonical_dict(first)))
    assert canonical_dict(third) == canonical_dict(first)


@settings(max_examples=80, deadline=None)
@given(manifests(), st.randoms(use_true_random=False))
def test_hash_ignores_key_order_comments_defaults_and_spellings(raw, rnd):
    base = spec_hash(load_one(to_yaml(raw)))
    assert spec_hash(load_one(to_yaml(shuffled(raw, rnd), comments=True))) == base
    explicit = canonical_dict(load_one(to_yaml(raw)))  # every default written out
    assert spec_hash(load_one(to_yaml(explicit))) == base
    reordered = dict(raw, spec=dict(raw["spec"], agents=list(reversed(raw["spec"]["agents"]))))
    assert spec_hash(load_one(to_yaml(reordered))) == base


@settings(max_examples=100, deadline=None)
@given(manifests())
def test_a_change_of_meaning_changes_the_hash(raw):
    base = spec_hash(load_one(to_yaml(raw)))
    renamed = dict(raw, metadata={"name": raw["metadata"]["name"] + "-x"})
    assert spec_hash(load_one(to_yaml(renamed))) != base
    agents = [dict(a) for a in raw["spec"]["agents"]]
    agents[0]["image"] = agents[0]["image"] + "-changed"
    assert spec_hash(load_one(to_yaml(dict(raw, spec=dict(raw["spec"], agents=agents))))) != base


def test_spellings_that_mean_the_same_hash_the_same():
    variants = [
        VALID,
        VALID.replace("memory: 512Mi", "memory: 536870912").replace(
            "timeout: 30s", "timeout: 30000ms"
        ),
        VALID.replace("cpu: 200m", "cpu: 0.2").replace(
            "defaultTimeout: 300s", "defaultTimeout: 5m"
        ),
        VALID.replace(
            "retryPolicy: exponential", "retryPolicy: {backoff: exponential, maxAttempts: 3}"
        ),
        VALID.replace("dependsOn: [classify]", "dependsOn: [classify, classify]"),
        VALID.replace('"0 9 * * 1-5"', '"0  9 * * mon-fri"'),
        VALID + "  budget: {}\n",
        VALID + "  llmRouting: {fallbacks: [{provider: local, model: m}]}\n",
    ]
    routed = VALID + "  llmRouting: {fallbacks: [{provider: local, model: m, conditions: {}}]}\n"
    assert spec_hash(load_one(routed)) == spec_hash(load_one(variants[-1]))
    variants.pop()
    assert len({spec_hash(load_one(v)) for v in variants}) == 1


def test_fallback_order_is_meaningful():
    routing = (
        "  llmRouting:\n    fallbacks:\n"
        "      - {provider: openai, model: a}\n      - {provider: local, model: b}\n"
    )
    swapped = (
        routing.replace("openai, model: a", "TMP")
        .replace("local, model: b", "openai, model: a")
        .replace("TMP", "local, model: b")
    )
    assert spec_hash(load_one(VALID + routing)) != spec_hash(load_one(VALID + swapped))


def test_defaults_are_materialized():
    workflow = load_one(VALID)
    review = workflow.spec.agents[2]
    assert review.resources.memory == 256 * 2**20
    assert review.limits.llm_calls == 100
    assert review.retry == workflow.spec.config.retry_policy
    data = canonical_dict(workflow)
    assert data["spec"]["agents"][2]["resources"] == {
        "cpu": "1",
        "memory": "256Mi",
        "storage": "64Mi",
        "timeout": "1m",
    }
