"""`agentflow validate` as users and CI call it: exit codes, formats, directories, git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentflowd.cli import app
from agentflowd.cli.report import _github
from agentflowd.manifest import Diagnostic
from tests.conftest import git
from tests.manifests import VALID, named

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Invoke the CLI in-process; returns (exit code, stdout, stderr)."""
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def test_examples_are_valid():
    examples = ROOT / "examples"
    code, out, _ = run("validate", str(examples / "workflows"), "--images-root", str(examples))
    assert code == 0, out
    assert out.splitlines()[-1] == "OK: 4 files, 4 workflows valid"


def test_images_are_looked_up_in_the_work_tree_and_named_when_missing(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    files: dict[str, str | bytes] = {
        "flows/a.yaml": named("a"),
        "agents/classifier/v1.2/agent.py": "x = 1\n",
        "agents/responder/v1.0/agent.wasm": b"\0asm",
    }
    write(tmp_path, files)
    code, out, err = run("validate", str(tmp_path / "flows"))
    assert code == 1 and err == ""
    assert out.splitlines()[0] == (
        f"{tmp_path}/flows/a.yaml:27:14: error: spec.agents[2].image: image 'agents/qa:v0.8' not "
        "found: expected agents/qa/v0.8/agent.wasm or agents/qa/v0.8/agent.py in the repository"
    )
    write(tmp_path, {"agents/qa/v0.8/agent.py": "def run(i):\n    return i\n"})
    code, out, _ = run("validate", str(tmp_path / "flows"))
    assert code == 0, out


def test_images_in_a_git_commit(git_repo):
    repo = git_repo({"w/a.yaml": named("a")})
    git(repo, "rm", "-q", "agents/qa/v0.8/agent.py")
    git(repo, "commit", "-q", "-m", "drop qa")
    code, out, _ = run("validate", "--git", "HEAD", "--repo", str(repo), "w")
    assert code == 1 and "image 'agents/qa:v0.8' not found" in out
    code, out, _ = run("validate", "--git", "HEAD~1", "--repo", str(repo), "w")
    assert code == 0, out


def test_outside_a_work_tree_images_are_not_checked_and_it_says_so(tmp_path):
    write(tmp_path, {"a.yaml": named("a")})
    code, _out, err = run("validate", str(tmp_path))
    assert code == 0
    assert "agent images not checked" in err and "--images-root" in err


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"agents/qa/v0.8": "a file, not a directory"}, "not found"),
        ({"agents/qa/v0.8/agent.py/x": "a directory named agent.py"}, "is not a file"),
    ],
)
def test_images_that_are_not_files(tmp_path, files, message):
    write(tmp_path, {"a.yaml": named("a"), **files})
    code, out, _ = run("validate", str(tmp_path), "--images-root", str(tmp_path))
    assert code == 1 and message in out


def test_a_symlinked_image_is_refused(tmp_path):
    write(tmp_path, {"a.yaml": named("a"), "outside/agent.py": "x = 1\n"})
    for image in ("classifier/v1.2", "responder/v1.0"):
        write(tmp_path, {f"agents/{image}/agent.py": "x = 1\n"})
    (tmp_path / "agents/qa/v0.8").mkdir(parents=True)
    (tmp_path / "agents/qa/v0.8/agent.py").symlink_to(tmp_path / "outside/agent.py")
    code, out, _ = run("validate", str(tmp_path), "--images-root", str(tmp_path))
    assert code == 1 and "agents/qa/v0.8/agent.py is a symlink" in out


def test_invalid_manifest_exits_1_with_file_line_col(tmp_path):
    bad = VALID.replace("dependsOn: [respond]", "dependOn: [respond]")
    write(tmp_path, {"a.yaml": named("a"), "sub/b.yaml": bad})
    code, out, _ = run("validate", str(tmp_path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"{tmp_path}/sub/b.yaml:28:7: error: spec.agents[2].dependOn: "
        "unknown field 'dependOn'; did you mean 'dependsOn'?"
    )
    assert lines[-1] == "FAILED: 1 error in 1 of 2 files; 1 of 2 workflows valid"


def test_directories_are_walked_recursively_skipping_hidden_and_other_files(tmp_path):
    write(
        tmp_path,
        {
            "a.yaml": named("a"),
            "deep/er/b.yml": named("b"),
            ".github/workflows/ci.yaml": "on: push\n",
            ".hidden.yaml": "junk: [",
            "README.md": "# not a manifest",
        },
    )
    code, out, _ = run("validate", str(tmp_path))
    assert (code, out.splitlines()[-1]) == (0, "OK: 2 files, 2 workflows valid")


def test_symlinks_in_a_walk_are_reported_not_followed(tmp_path):
    outside = write(tmp_path / "outside", {"secret.yaml": named("secret")})
    repo = write(tmp_path / "repo", {"a.yaml": named("a")})
    (repo / "link.yaml").symlink_to(outside / "secret.yaml")
    (repo / "linkdir").symlink_to(outside)  # like git, a linked directory is not walked
    code, out, _ = run("validate", str(repo))
    assert code == 1
    assert out.splitlines()[0] == (
        f"{repo}/link.yaml: error: symlink to '{outside}/secret.yaml' is not followed"
    )
    assert "secret" not in out.replace("secret.yaml' is not followed", "")
    code, out, _ = run("validate", str(tmp_path / "repo" / "linkdir"))  # named: followed
    assert code == 0


def test_a_file_named_twice_is_read_once(tmp_path):
    write(tmp_path, {"d/a.yaml": named("a")})
    code, out, _ = run("validate", str(tmp_path / "d"), str(tmp_path / "d" / "a.yaml"))
    assert (code, out.splitlines()[-1]) == (0, "OK: 1 file, 1 workflow valid")


def test_special_files_are_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    code, out, _ = run("validate", str(tmp_path))
    assert code == 1 and "pipe.yaml: error: not a regular file" in out


def test_submodule_checkouts_are_not_walked(tmp_path):
    write(
        tmp_path,
        {"a.yaml": named("a"), "vendor/sub/.git": "gitdir: x", "vendor/sub/a.yaml": named("a")},
    )
    code, out, _ = run("validate", str(tmp_path))
    assert (code, out.splitlines()[-1]) == (0, "OK: 1 file, 1 workflow valid")


def test_json_format(tmp_path):
    write(tmp_path, {"a.yaml": named("a"), "b.yaml": "kind: [\n"})
    code, out, _ = run("validate", "--format", "json", str(tmp_path))
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    assert [w["name"] for w in data["workflows"]] == ["a"]
    assert len(data["workflows"][0]["hash"]) == 64
    (diag,) = data["diagnostics"]
    assert diag["file"].endswith("b.yaml") and diag["code"] == "yaml-syntax" and diag["line"] == 2
    assert data["summary"].startswith("FAILED: 1 error in 1 of 2 files")


def test_github_format(tmp_path):
    write(tmp_path, {"a.yaml": VALID.replace("memory: 512Mi", "memory: 512m")})
    code, out, _ = run("validate", "-f", "github", "a.yaml", cwd=tmp_path)
    assert code == 1
    assert out.splitlines() == [
        (
            "::error file=a.yaml,line=16,col=17,title=agentflow schema-value-error::"
            "spec.agents[0].resources.memory: '512m' is not a memory size; did you mean 512Mi?"
        ),
        "FAILED: 1 error in 1 of 1 file; 0 of 1 workflow valid",
    ]


def test_github_annotations_escape_their_syntax():
    diag = Diagnostic(file="a,b:c.yaml", line=0, message="50% off\nnext", code="x")
    assert _github(diag) == "::error file=a%2Cb%3Ac.yaml,title=agentflow x::50%25 off%0Anext"


def test_verbose_describes_workflows():
    code, out, _ = run(
        "validate",
        "-v",
        str(ROOT / "examples" / "workflows"),
        "--images-root",
        str(ROOT / "examples"),
    )
    assert code == 0
    assert "workflow customer-support-pipeline (valid)" in out
    assert "[ticket-classifier] -> [response-generator] -> [quality-checker]" in out
    assert "cron '0 9 * * 1-5' UTC, next " in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give at least one PATH"),
        (("/no/such/path",), "/no/such/path: no such file or directory"),
        (("--format", "xml", "."), "Invalid value for '--format'"),
        (("--bogus",), "No such option: --bogus"),
    ],
    ids=["no-paths", "missing-path", "bad-format", "bad-option"],
)
def test_usage_errors_exit_2(args, message):
    code, out, err = run("validate", *args)
    assert code == 2
    assert message in err


def test_empty_directory_fails(tmp_path):
    code, out, _ = run("validate", str(tmp_path))
    assert (code, out.strip()) == (1, "FAILED: no manifest files (*.yaml, *.yml) found")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"a: " + b"x" * 2_000_000 + b"\n", "over the limit of 1,048,576 bytes"),
        (
            "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 12))
            .replace("*l0", "lol")
            .encode(),
            "billion laughs",
        ),
        (b"a: " + b"[" * 200_000 + b"]" * 200_000 + b"\n", "nesting is deeper than 64 levels"),
        (b"a: \xff\xfe\n", "not valid UTF-8"),
        (b"a:\n\tb: 1\n", "tab character in indentation"),
    ],
    ids=["huge", "billion-laughs", "deep", "not-utf8", "tabs"],
)
def test_hostile_files_get_one_clear_line(tmp_path, content, fragment):
    write(tmp_path, {"evil.yaml": content, "good.yaml": named("good")})
    code, out, _ = run("validate", str(tmp_path))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith(f"{tmp_path}/evil.yaml") and fragment in lines[0]


def test_validate_a_git_commit_without_checkout(git_repo):
    repo = git_repo({"workflows/a.yaml": named("a"), "workflows/b.yaml": named("b")})
    first = git(repo, "rev-parse", "HEAD")
    bad = named("b").replace("dependsOn: [respond]", "dependsOn: [nobody]")
    git_repo({"workflows/b.yaml": bad})
    # The working tree is broken too, but --git reads only the commit.
    (repo / "workflows" / "a.yaml").write_text("garbage: [", encoding="utf-8")

    code, out, _ = run("validate", "--git", first, "--repo", str(repo))
    assert code == 0, out
    assert out.splitlines()[-2:] == [f"commit {first}", "OK: 2 files, 2 workflows valid"]

    code, out, _ = run("validate", "--git", "main", "--repo", str(repo), "-f", "github")
    assert code == 1
    assert out.splitlines()[0].startswith("::error file=workflows/b.yaml,line=28,col=19,")


def test_validate_git_subpath_and_bad_ref(git_repo):
    repo = git_repo({"prod/a.yaml": named("a"), "dev/a.yaml": "broken: ["})
    code, out, _ = run("validate", "--git", "HEAD", "--repo", str(repo), "prod")
    assert (code, out.splitlines()[-1]) == (0, "OK: 1 file, 1 workflow valid")
    code, _, err = run("validate", "--git", "no-such-branch", "--repo", str(repo))
    assert code == 2 and "revision 'no-such-branch' not found" in err
    code, _, err = run("validate", "--git", "HEAD", "--repo", str(repo), "nowhere")
    assert code == 2 and "path 'nowhere' does not exist at HEAD" in err


def test_console_scripts_end_to_end(tmp_path):
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [
            BIN / "agentflowd",
            "check",
            ROOT / "examples" / "workflows",
            "--images-root",
            ROOT / "examples",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "content-generation-pipeline (valid)" in done.stdout
    assert "[content-planner] -> [content-writer] -> [seo-optimizer, copy-editor]" in done.stdout
    write(tmp_path, {"bad.yaml": "apiVersion: v9\n"})
    done = subprocess.run(
        [BIN / "agentflow", "validate", tmp_path / "bad.yaml"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert "bad.yaml:1:13: error: apiVersion: apiVersion 'v9' is not supported" in done.stdout


def test_schema_command(tmp_path):
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out)["title"] == "AgentFlow Workflow"
    code, _, _ = run("schema", "-o", str(ROOT / "schemas" / "workflow.v1.schema.json"), "--check")
    assert code == 0
    stale = tmp_path / "s.json"
    stale.write_text("{}", encoding="utf-8")
    code, _, err = run("schema", "-o", str(stale), "--check")
    assert code == 1 and "out of date" in err
    code, _, _ = run("schema", "-o", str(stale))
    assert code == 0 and json.loads(stale.read_text())["title"] == "AgentFlow Workflow"


def test_version():
    code, out, _ = run("version")
    assert code == 0 and out.startswith("agentflow 0.")


@pytest.mark.parametrize("sub", [".", "./", "w/", "./w", "w/../w"])
def test_git_sub_paths_are_normalized(git_repo, sub):
    repo = git_repo({"w/a.yaml": named("a")})
    code, out, _ = run("validate", "--git", "HEAD", "--repo", str(repo), sub)
    assert (code, out.splitlines()[-1]) == (0, "OK: 1 file, 1 workflow valid"), out


@pytest.mark.parametrize(
    ("sub", "message"),
    [("/etc", "relative to the repository root"), ("../x", "leaves the repository")],
)
def test_git_sub_paths_cannot_leave_the_tree(git_repo, sub, message):
    repo = git_repo({"w/a.yaml": named("a")})
    code, _, err = run("validate", "--git", "HEAD", "--repo", str(repo), sub)
    assert code == 2 and message in err
