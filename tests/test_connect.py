"""Connecting to Tinker when something is wrong: a silent or failing server, a bad key.

Every case ends in one line naming what to check, within about ``CONNECT_TIMEOUT``, and
never shows the key: not on the terminal, not in generation's journal or rejects.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import cli
from helpers.backend import CONNECT_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
KEY = "tml-CONNECT-TEST-KEY-0123456789-must-not-leak"


class SilentServer:
    """Accepts every connection and never answers a byte."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:  # closed
                return

    def __enter__(self) -> SilentServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class FailingServer:
    """Answers every request with HTTP ``status`` (500 unless told); with ``only``, just the
    requests whose path ends with it, and the others with 200 and an empty JSON object."""

    def __init__(self, status: int = 500, only: str | None = None):
        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                failing = only is None or self.path.rstrip("/").endswith(only)
                payload = json.dumps({"error": f"failing on purpose with {status}"} if failing else {}).encode()
                self.send_response(status if failing else 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = answer  # noqa: N815 (http.server's names)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FailingServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _environment(url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "PD_BACKEND"}
    env.update(TINKER_API_KEY=key, TINKER_BASE_URL=url, PD_BACKEND="tinker", PYTHONPATH=str(ROOT))
    return env


def test_a_server_that_never_answers_or_fails_every_request_stops_every_command_in_time(tmp_path):
    """The SDK creates its client by asking the server for its configuration, and retries a
    silent or failing server for minutes: the key check covers that too. Both commands stop
    with exit code 2 and one line naming the server, within about CONNECT_TIMEOUT (both run
    at once, to keep the test short)."""
    with SilentServer() as silent, FailingServer() as failing:
        commands = {
            silent.url: ["generate", "--queries", "data/dev_gold.jsonl", "--out", str(tmp_path / "d.jsonl"),
                         "--backend", "tinker"],
            failing.url: ["run", "--out", str(tmp_path / "run"), "--backend", "tinker", "--quick"],
        }
        started = time.monotonic()
        procs = {url: subprocess.Popen([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=_environment(url, KEY),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for url, args in commands.items()}
        outputs = {}
        for url, proc in procs.items():
            try:
                outputs[url] = (*proc.communicate(timeout=max(1.0, CONNECT_TIMEOUT + 40 - (time.monotonic() - started))),
                                time.monotonic() - started)
            except subprocess.TimeoutExpired:
                for p in procs.values():
                    p.kill()
                    p.communicate()
                pytest.fail(f"{commands[url][0]} against {url} still hangs after {time.monotonic() - started:.0f} s")
    for url, (stdout, stderr, seconds) in outputs.items():
        assert procs[url].returncode == 2, stderr[-2000:]
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and f"Tinker at {url} did not answer within" in lines[0], stderr[-2000:]
        assert seconds < CONNECT_TIMEOUT + 25, (url, seconds)
        assert KEY not in stdout + stderr
    assert not (tmp_path / "d.jsonl").exists()


@pytest.mark.parametrize("only", [None, "get_server_capabilities"], ids=["every-request", "capabilities-only"])
def test_an_account_with_a_billing_problem_stops_with_one_line_at_once(monkeypatch, only):
    """A 402 (billing not set up, or out of credit) stops the check with the reason; otherwise
    the SDK pauses every later request on it for up to an hour without a word. Also when the
    server answers the SDK's own configuration request and refuses only the billing-gated
    one: the SDK's usual path sits on that 402 and the check used to report, after
    CONNECT_TIMEOUT, a server that "did not answer"."""
    from helpers.backend import BackendError, check_key

    monkeypatch.setenv("TINKER_API_KEY", KEY)
    with FailingServer(status=402, only=only) as server:
        monkeypatch.setenv("TINKER_BASE_URL", server.url)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"API key in TINKER_API_KEY but reports a billing problem \(402\)"):
            check_key(server.url)
    assert time.monotonic() - started < CONNECT_TIMEOUT / 2


def test_a_connection_lost_while_checking_the_key_stops_with_one_line(monkeypatch):
    """The SDK's key check is not retried by our code: when the SDK gives up on the connection
    within the time allowed, one line names the server, not the SDK's own error. (A real
    dropped connection is retried by the SDK's HTTP client for about a minute and so ends as
    "did not answer", which the silent server above covers.)"""
    import tinker

    from helpers.backend import BackendError, check_key, tinker_base_url

    def lost() -> None:
        raise tinker.APIConnectionError(request=None)  # the SDK only keeps the request it names

    monkeypatch.setenv("TINKER_API_KEY", KEY)
    monkeypatch.setenv("TINKER_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(tinker.auth, "raise_if_tinker_not_accessible", lost)
    url = tinker_base_url()
    with pytest.raises(BackendError, match=rf"^Tinker at {url} could not be asked to check the API key "
                                           r"\(APIConnectionError: Connection error\.\); try again later") as caught:
        check_key(url)
    assert KEY not in str(caught.value)


@pytest.fixture
def tinker_env(monkeypatch):
    """No proxy, no PD_BACKEND and no credential command: the key in TINKER_API_KEY decides."""
    for name in list(os.environ):
        if "proxy" in name.lower() or name in ("PD_BACKEND", "TINKER_CREDENTIAL_CMD"):
            monkeypatch.delenv(name)
    return monkeypatch


def _generate(tmp_path, capsys) -> tuple[int, list[str], str]:
    code = cli.main(["generate", "--queries", str(ROOT / "data" / "dev_gold.jsonl"), "--out", str(tmp_path / "d.jsonl")])
    out, err = capsys.readouterr()
    return code, err.strip().splitlines(), out + err


def test_a_blank_key_stops_with_one_line_naming_the_setting(tinker_env, tmp_path, capsys):
    """A key of blanks is set (so it chooses Tinker) but is no key: one line says so, before any
    request, and the message is not mangled by redaction (it used to read 'cannot***reach***...')."""
    tinker_env.setenv("TINKER_API_KEY", "  ")
    tinker_env.setenv("TINKER_BASE_URL", "http://127.0.0.1:9")  # never asked
    code, lines, _ = _generate(tmp_path, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "TINKER_API_KEY is set but empty" in lines[0] and "***" not in lines[0]


@pytest.mark.parametrize("key", [" ", "\t\n", "tml-ab", "short"])
def test_redaction_leaves_a_blank_or_short_key_alone(monkeypatch, key):
    monkeypatch.setenv("TINKER_API_KEY", key)
    text = "error: cannot reach the Tinker server at http://127.0.0.1:9 (tml-ab short)"
    assert cli._redact(text) == text


def test_redaction_hides_a_key_even_with_blanks_around_it(monkeypatch):
    monkeypatch.setenv("TINKER_API_KEY", f" {KEY}\n")
    assert cli._redact(f"Invalid API key {KEY}, see docs") == "Invalid API key ***, see docs"


def test_a_key_without_the_sdk_prefix_stops_with_one_line_naming_the_setting(tinker_env, tmp_path, capsys):
    """The SDK refuses a key that does not start with 'tml-' before sending anything; the line
    names TINKER_API_KEY (it used to say only 'Tinker: TinkerError: The api_key must ...')."""
    key = "sk-test-SECRET123"
    with SilentServer() as server:  # reachable, but the SDK stops before asking it
        tinker_env.setenv("TINKER_API_KEY", key)
        tinker_env.setenv("TINKER_BASE_URL", server.url)
        started = time.monotonic()
        code, lines, output = _generate(tmp_path, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "API key in TINKER_API_KEY" in lines[0] and "'tml-' prefix" in lines[0], lines
    assert key not in output and "SECRET123" not in output
    assert time.monotonic() - started < CONNECT_TIMEOUT / 2  # refused at once, not timed out


class KeyQuotingTeacher:
    """A teacher whose every request fails with an error that quotes the API key, once in a
    short message and once where one_line's 300-character cut would go through the key."""

    def __init__(self, key: str):
        from helpers.local.model import load_tokenizer

        self.key = key
        self.tokenizer = load_tokenizer()
        self.calls = 0

    def get_tokenizer(self):
        return self.tokenizer

    def get_base_model(self) -> str:
        return "test/key-quoting"

    def sample(self, prompt, num_samples, sampling_params):
        self.calls += 1
        said = "request refused for api key "
        padding = "" if self.calls % 2 else "x" * (280 - len("RuntimeError: ") - len(said))  # the key from 280 on
        future = concurrent.futures.Future()
        future.set_exception(RuntimeError(f"{padding}{said}{self.key} (quota)"))
        return future


def test_an_error_quoting_the_key_is_recorded_without_it(monkeypatch, tmp_path):
    """generate records a failed query's error in its journal (.partial) and rejects; a server
    that quotes the key in it leaves neither the key nor a piece of it there."""
    from helpers.generate import GenerateConfig, generate

    monkeypatch.setenv("TINKER_API_KEY", KEY)
    out = tmp_path / "d.jsonl"
    teacher = KeyQuotingTeacher(KEY)
    summary = generate(teacher, ["Guten Morgen zusammen", "Bonjour tout le monde", "Buenos días"], out,
                       config=GenerateConfig(max_retries=0), progress=False)
    assert summary.rows == 0 and summary.rejects["error"] == 3 and teacher.calls == 3
    rejects = [json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert all("request refused for api key ***" in r["error"] or r["error"].endswith("...") for r in rejects)
    assert any("request refused for api key *** (quota)" in r["error"] for r in rejects)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".partial") for p in files)
    for path in files:
        assert KEY[:8] not in path.read_text(encoding="utf-8"), path


def test_the_server_address_follows_the_sdks_rule_even_without_its_helper(monkeypatch):
    """tinker_base_url asks the SDK's internal resolve_base_url; an SDK without it gets the same answers."""
    import sys

    from helpers.backend import tinker_base_url

    monkeypatch.setenv("TINKER_BASE_URL", "http://127.0.0.1:8000/")
    cases = [(None,), ("http://example.test/api/",)]
    with_sdk = [tinker_base_url(*case) for case in cases]
    monkeypatch.setitem(sys.modules, "tinker.lib.base_url", None)  # the import now fails
    assert [tinker_base_url(*case) for case in cases] == with_sdk == ["http://127.0.0.1:8000", "http://example.test/api"]
    monkeypatch.delenv("TINKER_BASE_URL")
    assert tinker_base_url() == "https://tinker.thinkingmachines.dev/services/tinker-prod"


def test_a_server_that_falls_silent_after_the_key_check_stops_the_list_of_models_in_time(tinker_env, tmp_path):
    """Asking for the models (notebook 05's teachers, ``check_model``) has the connection's time
    limit too: before, it waited for as long as the SDK retried."""
    from fake_tinker import FakeTinker

    import helpers.backend as backend

    class FallsSilent(FakeTinker):
        def handle(self, path, body, content_type):
            if path.endswith("get_server_capabilities") and self.calls.get("get_server_capabilities", 0) >= 1:
                time.sleep(60)  # the key check got its answer; the next ask gets none
            return super().handle(path, body, content_type)

    tinker_env.setattr(backend, "CONNECT_TIMEOUT", 3.0)
    tinker_env.setenv("TINKER_API_KEY", KEY)
    with FallsSilent(tmp_path / "server") as server:
        tinker_env.setenv("TINKER_BASE_URL", server.url)
        service = backend.connect("tinker")
        started = time.monotonic()
        with pytest.raises(backend.BackendError, match=r"did not answer within 3 s when asked for its models"):
            backend.check_model(service, "Qwen/Qwen3-30B-A3B")  # listed: only time can fail it
    assert time.monotonic() - started < 10


def test_finishing_sessions_on_a_server_that_does_not_answer_waits_a_bounded_time_and_never_raises(monkeypatch):
    import helpers.backend as backend

    class NoAnswer:  # close() whose future never completes, as on a silent server
        def close(self, status):
            self.status = status
            return concurrent.futures.Future()

    class Refuses:
        def close(self, status):
            raise RuntimeError("server error")

    clients = [NoAnswer(), Refuses(), NoAnswer()]
    monkeypatch.setattr(backend, "_OPENED", list(clients))
    started = time.monotonic()
    assert backend.finish_sessions("errored", timeout=0.5) == 3
    assert time.monotonic() - started < 3
    assert clients[0].status == clients[2].status == "errored" and backend._OPENED == []


def test_log_records_quoting_the_key_are_redacted_in_message_and_traceback(monkeypatch):
    """redact_logs (connect() calls it on Tinker) covers any logger, a child of tinker's
    included, in the message, its arguments and the exception's text."""
    import io
    import logging

    from helpers.backend import redact_logs

    monkeypatch.setenv("TINKER_API_KEY", KEY)
    redact_logs()
    factory = logging.getLogRecordFactory()
    redact_logs()  # idempotent: the factory is wrapped once, whoever calls connect() again
    assert logging.getLogRecordFactory() is factory
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tinker.lib.some_child")
    logger.addHandler(handler)
    try:
        logger.error("refused: %s", KEY)
        try:
            raise RuntimeError(f"server said x-api-key={KEY}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "refused: ***" in text and "x-api-key=***" in text and "Traceback" in text
    assert KEY[:8] not in text
