"""`agentflow agent run`: one agent locally, its output, log and typed outcome; exit codes."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentflowd.cli import app
from tests.sandbox import wat

pytestmark = pytest.mark.slow


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["agent", "run", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def agent(tmp_path: Path, agentflow_cache: Path) -> Path:
    path = tmp_path / "agent.py"
    path.write_text(
        "from agentflow import llm, log\n"
        "def run(input):\n"
        "    log('asking')\n"
        "    return {'answer': llm.complete(prompt=input['q'])['text']}\n",
        encoding="utf-8",
    )
    return path


def test_a_good_agent_prints_its_output(agent):
    code, out, err = run(str(agent), "--input", '{"q": "why?"}')
    assert code == 0, err
    assert re.fullmatch(r"\[mock [0-9a-f]{8}\] why\?", json.loads(out)["answer"])
    assert "[info] asking" in err and "outcome: ok" in err


def test_input_from_a_file_and_canned_answers(agent, tmp_path):
    (tmp_path / "in.json").write_text('{"q": "x"}', encoding="utf-8")
    (tmp_path / "answers.json").write_text('[{"text": "forty-two"}]', encoding="utf-8")
    code, out, _ = run(
        str(agent), "--input", f"@{tmp_path / 'in.json'}", "--llm", str(tmp_path / "answers.json")
    )
    assert (code, json.loads(out)) == (0, {"answer": "forty-two"})


@pytest.mark.parametrize(
    ("source", "flags", "outcome"),
    [
        (
            "def run(input):\n    while True:\n        pass\n",
            ["--timeout", "300ms", "--cpu", "100"],
            "outcome: timeout",
        ),
        (
            "def run(input):\n    while True:\n        pass\n",
            ["--timeout", "10s", "--cpu", "5m"],
            "outcome: cpu-limit",
        ),
        (
            "def run(input):\n    x = []\n    while True:\n        x.append(' ' * 2**20)\n",
            ["--memory", "64Mi"],
            "outcome: memory-limit",
        ),
        (
            "def run(input):\n    raise ValueError('nope')\n",
            [],
            "outcome: agent-error: ValueError: nope",
        ),
        (
            "from agentflow import http\ndef run(input):\n    return http.fetch('http://127.0.0.1:1/')\n",
            [],
            "outcome: network-denied",
        ),
    ],
    ids=["infinite-loop", "fuel-burner", "memory-hog", "crash", "ssrf"],
)
def test_hostile_agents_get_their_outcome_and_exit_1(
    tmp_path, agentflow_cache, source, flags, outcome
):
    path = tmp_path / "agent.py"
    path.write_text(source, encoding="utf-8")
    code, out, err = run(str(path), *flags)
    assert code == 1 and out == ""
    assert outcome in err, err


def test_a_component_runs_too(tmp_path, agentflow_cache):
    # a .wasm file is a component of the agent world (here compiled from WAT text)
    path = tmp_path / "echo.wasm"
    path.write_text(wat.ECHO, encoding="utf-8")
    code, out, _ = run(str(path), "--input", '{"hello": 1}')
    assert (code, out.strip()) == (0, '{"hello": 1}')


def test_bad_flags_exit_2(agent):
    assert run(str(agent), "--timeout", "soon")[0] == 2
    assert run(str(agent), "--input", "{not json")[0] == 2


def test_build_packages_an_agent_with_its_modules(tmp_path, agentflow_cache):
    src = tmp_path / "shouter"
    src.mkdir()
    (src / "agent.py").write_text(
        "import helper\nfrom agentflow import log\n\n"
        "def run(input):\n    log('shouting')\n    return {'shout': helper.shout(input['text'])}\n",
        encoding="utf-8",
    )
    (src / "helper.py").write_text("def shout(t):\n    return t.upper() + '!'\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["build", str(src)])
    assert result.exit_code == 0, result.stderr
    built = Path(result.stdout.strip())
    assert built == src / "agent.wasm" and built.stat().st_size > 2**20
    code, out, err = run(str(built), "--input", '{"text": "hi"}')
    assert (code, json.loads(out)) == (0, {"shout": "HI!"}), err


def test_build_needs_an_agent_py(tmp_path):
    result = CliRunner().invoke(app, ["build", str(tmp_path)])
    assert result.exit_code == 1 and "has no agent.py" in result.stderr


def test_an_image_reference_runs_the_agent_the_workflow_rule_finds(agent, tmp_path):
    image = tmp_path / "agents" / "echo" / "v1"
    image.mkdir(parents=True)
    (image / "agent.py").write_text(agent.read_text(encoding="utf-8"), encoding="utf-8")
    digest = hashlib.sha256((image / "agent.py").read_bytes()).hexdigest()
    code, out, err = run("agents/echo:v1", "--images-root", str(tmp_path), "-i", '{"q": "hi"}')
    assert code == 0, err
    assert re.fullmatch(r"\[mock [0-9a-f]{8}\] hi", json.loads(out)["answer"])
    assert f"image agents/echo:v1: agents/echo/v1/agent.py sha256:{digest}" in err
    code, out, err = run(str(image), "-i", '{"q": "dir"}')  # an image directory works too
    assert code == 0 and json.loads(out)["answer"].endswith("] dir")
    code, _, err = run("agents/echo:v2", "--images-root", str(tmp_path))
    assert code == 2 and "image 'agents/echo:v2' not found" in err
    code, _, err = run("Not An Image", "--images-root", str(tmp_path))
    assert code == 2 and "no such file, and not an image reference" in err


def test_a_component_sleeping_in_wasi_stops_at_its_timeout(tmp_path, agentflow_cache):
    path = tmp_path / "sleeper.wasm"
    path.write_text(wat.sleeper(60), encoding="utf-8")
    code, out, err = run(str(path), "--timeout", "300ms")
    assert code == 1 and out == ""
    # Both endings are a worker-process step cut at its deadline; which one depends on whether
    # the worker process started within the 300 ms (~0.2 s unloaded). Run in-process, the step
    # would instead end after the 60 s sleep with no reason in brackets.
    assert re.search(
        r"outcome: timeout: the step ran past its timeout \((blocked in a WASI wait; its worker "
        r"process was killed|no sandbox worker process was ready)\)",
        err,
    ), err


def test_agent_llm_calls_follow_the_workflows_routing(agent, tmp_path):
    from tests.router.test_pricing_policy import ROUTED

    workflow = tmp_path / "w.yaml"
    workflow.write_text(ROUTED, encoding="utf-8")
    env = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "CREDENTIALS_DIRECTORY": ""}
    result = CliRunner().invoke(
        app,
        [
            "agent",
            "run",
            str(agent),
            "-f",
            str(workflow),
            "--agent",
            "classify",
            "-i",
            '{"q": "x"}',
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    # classify declares data_sensitivity: high: only local may answer; it has no baseUrl, so the
    # mock answers in its place, and says so
    assert "agentflow: local: no baseUrl; answered by the mock provider" in result.stderr
    assert json.loads(result.stdout)["answer"].startswith("[mock ")
