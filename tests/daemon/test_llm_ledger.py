"""kill -9 with LLM calls in flight: no call the provider received is missing from the cost
ledger, and a daily budget holds across the restarts, on SQLite and PostgreSQL.

A fake OpenAI-compatible provider on 127.0.0.1 counts the requests it receives and answers each
after a pause, so calls are in flight whenever the daemon is killed. Every request it receives
is billed (a provider charges for a request whose client died): at the price the daemon is
configured with, one call costs exactly its worst case, so the budget admits exactly
``BUDGET / CALL_COST`` requests in all, and one more means a kill made the budget forget a call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO

import httpx
import pytest
import sqlalchemy as sa

from agentflowd.store import SqlStore
from router.types import Usage
from tests.conftest import ADMIN, free_port, fresh_postgres_database, git, postgres_admin_url
from tests.engine.harness import agent, manifest
from tests.router.fake_llm import FakeLLM, Rendered, Reply, serve_fake
from tests.sandbox import wat
from tests.waiting import wait_for

BIN = Path(sys.executable).parent
EXECUTIONS = 50
CALLS = 2  # LLM calls per execution (one step)
MAX_TOKENS = 10
#: USD per million output tokens: a call (10 output tokens, input free) costs $0.01, its worst case
OUTPUT_PRICE = 1000
CALL_COST = Decimal(OUTPUT_PRICE) * MAX_TOKENS / 1_000_000
BUDGET = Decimal("0.60")  # 60 of the 100 calls the executions would make
KILLS = (12, 30)  # kill -9 once the provider has received this many requests
IN_FLIGHT = 1  # ... and at least this many are waiting for their answer

pytestmark = pytest.mark.slow

_pause = threading.Event()  # never set: wait() is the provider's thinking time


@dataclass
class SlowLLM(FakeLLM):
    """The fake provider, answering each request ``delay`` seconds after it arrived; counts the
    requests received and those not answered yet."""

    delay: float = 1.0
    in_flight: int = 0
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def respond(
        self, path: str, headers: Mapping[str, str], raw: bytes, peer: str = ""
    ) -> Rendered:
        with self._count_lock:
            self.in_flight += 1
        try:
            rendered = super().respond(path, headers, raw, peer)  # recorded (billed) on arrival
            _pause.wait(self.delay)
            return rendered
        finally:
            with self._count_lock:
                self.in_flight -= 1


def llm_agent(calls: int) -> str:
    """Calls llm-complete with a fixed prompt ``calls`` times; stops at the first error (the
    budget refusing a call), returning it as the step's error."""
    request = '{\\"prompt\\":\\"hi\\"}'  # WAT escapes: 15 bytes of JSON
    return wat.component(
        f"""(local.set $i (i32.const 0))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const {calls})))
        (call $llm (i32.const 100) (i32.const 15) (i32.const 4096))
        (br_if $done (i32.load8_u (i32.const 4096)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (if (result i32) (i32.eqz (i32.load8_u (i32.const 4096)))
        (then (call $ok (i32.load (i32.const 4100)) (i32.load (i32.const 4104))))
        (else (call $err (i32.load (i32.const 4100)) (i32.load (i32.const 4104)))))""",
        data=f'(data (i32.const 100) "{request}")',
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "agentflow.db")
        return
    with fresh_postgres_database(postgres_admin_url()) as url:
        yield url


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "agents/ask/v1").mkdir(parents=True)
    (path / "agents/ask/v1/agent.wasm").write_text(llm_agent(CALLS), encoding="utf-8")
    llm = f"      llm: {{provider: local, model: m, maxTokens: {MAX_TOKENS}}}"
    config = (
        f"    maxConcurrentExecutions: 1000\n  budget: {{perDay: {BUDGET}, onExceeded: refuse}}"
    )
    text = manifest("ask", agent("ask", "agents/ask:v1", extra=llm), config=config)
    (path / "ask.yaml").write_text(text, encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "ask")
    return path


def write_config(path: Path, provider_url: str) -> Path:
    path.write_text(
        f"""router:
  providers:
    local: {{kind: local, baseUrl: "{provider_url}/v1"}}
  prices:
    local/m: {{input: 0, output: {OUTPUT_PRICE}}}
  maxAttempts: 1
""",
        encoding="utf-8",
    )
    return path


def start(
    repo: Path, state: Path, database: str, url: str, config: Path, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            BIN / "agentflowd",
            "serve",
            "--config",
            str(config),
            "--repo",
            str(repo),
            "--state-dir",
            str(state),
            "--database",
            database,
            "--listen",
            url.removeprefix("http://"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={
            **os.environ,
            "AGENTFLOW_WORKERS": "8",
            "AGENTFLOW_WARM_PYTHON": "false",
            "NO_PROXY": "127.0.0.1",
        },
    )


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_kill_9_with_llm_calls_in_flight_loses_no_call_and_keeps_the_budget(tmp_path, database):
    fake = SlowLLM(default=Reply(text="hello", usage=Usage(input_tokens=5, output_tokens=10)))
    with serve_fake(fake) as provider_url, (tmp_path / "daemon.log").open("ab") as log:
        config = write_config(tmp_path / "agentflowd.yaml", provider_url)
        repo = make_repo(tmp_path / "repo")
        url = f"http://127.0.0.1:{free_port()}"
        proc = start(repo, tmp_path / "state", database, url, config, log)
        store = SqlStore.open(database)
        killed_in_flight: list[int] = []
        try:
            wait_for(lambda: up(url), timeout=60, what="the daemon")
            wait_for(
                lambda: len(httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()) == 1,
                timeout=30,
                what="the workflow to be applied",
            )
            for i in range(EXECUTIONS):
                response = httpx.post(
                    f"{url}/api/v1/workflows/ask/executions", json={"input": i}, headers=ADMIN
                )
                assert response.status_code == 202
            for target in KILLS:

                def in_flight(target: int = target) -> bool:
                    return len(fake.requests) >= target and fake.in_flight >= IN_FLIGHT

                try:
                    wait_for(in_flight, timeout=300, what=f"{target} requests, some in flight")
                except AssertionError as exc:  # say where the daemon was (seen under load)
                    tail = (tmp_path / "daemon.log").read_text(errors="replace")[-6000:]
                    raise AssertionError(
                        f"{exc}: {len(fake.requests)} requests, {fake.in_flight} in flight; "
                        f"the daemon's log ends:\n{tail}"
                    ) from exc
                # read before the kill: once the daemon's connections close, the fake server
                # may count its dropped requests as done before this thread looks
                killed_in_flight.append(fake.in_flight)
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                proc = start(repo, tmp_path / "state", database, url, config, log)
                wait_for(lambda: up(url), timeout=60, what="the daemon after kill -9")
            done = "SELECT COUNT(*) FROM executions WHERE finished_at IS NOT NULL"
            wait_for(lambda: count(store.engine, done) == EXECUTIONS, timeout=300, what="the end")
            wait_for(lambda: fake.in_flight == 0, timeout=30, what="the last answers")
            ledger = store.llm_costs(by="state", workflow="ask")
            refused = count(store.engine, "SELECT COUNT(*) FROM executions WHERE state = 'failed'")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
            store.close()
    requests = len(fake.requests)
    rows = sum(n for _, n in ledger.values())
    spent = sum((cost for cost, _ in ledger.values()), Decimal(0))
    print(f"{requests} requests, ledger {ledger}, in flight at the kills: {killed_in_flight}")
    assert all(n > 0 for n in killed_in_flight)  # the kills did catch calls in flight
    assert refused > 0  # the budget was reached: the executions wanted more than it allows
    assert requests <= rows  # every request the provider received is in the ledger
    assert spent <= BUDGET  # what the ledger counts stays within the budget
    assert requests * CALL_COST <= BUDGET  # and so does what the provider billed
