"""A Tinker server on localhost, backed by the local backend, for the real SDK to talk to.

The course cannot reach Tinker from CI, so the path that runs with a key (our calls,
through the real ``tinker`` SDK: its sessions, request ordering, futures, protobuf and
JSON wire formats) would otherwise go untested past the client interface. This server
answers the SDK's HTTP requests with the local backend's tiny models, so a test can
run ``connect("tinker", base_url=server.url)`` and the course's own code end to end up
to the network boundary. It speaks only the part of the API the course uses, and
records every request path so that a test can see what went over the wire.

It is test scaffolding, not a Tinker emulator: no auth check, no queueing, every
request finishes before its future is first asked for.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from tinker import types
from tinker.proto import tinker_public_pb2 as pb

from helpers.local import LocalServiceClient

ALIASES = {"Qwen/Qwen3-30B-A3B": ("local/tiny", "local/policy-teacher")}
"""The course's Tinker default, as the local backend's models: the tiny student to train,
the rule-based stand-in to sample (so that a run with Tinker's defaults works here)."""
NO_CAPACITY = "fake/no-sampling-capacity"  # listed with sampleable=False; sampling it is an error

_DTYPES = {pb.DTYPE_FLOAT32: (np.float32, "float32"), pb.DTYPE_INT64: (np.int64, "int64")}


def _tensor(msg) -> types.TensorData:
    np_dtype, name = _DTYPES[msg.dtype]
    return types.TensorData(data=np.frombuffer(msg.dense, dtype=np_dtype).tolist(), dtype=name, shape=list(msg.shape) or None)


def _datum(msg) -> types.Datum:
    chunks = [types.EncodedTextChunk(tokens=np.frombuffer(c.encoded_text.tokens, dtype=np.int32).tolist()) for c in msg.model_input]
    return types.Datum(model_input=types.ModelInput(chunks=chunks),
                       loss_fn_inputs={k: _tensor(v) for k, v in msg.loss_fn_inputs.items()})


def _fwdbwd_proto(output: types.ForwardBackwardOutput) -> bytes:
    """The SDK reads ForwardBackwardOutput only as protobuf: one batched record per field."""
    msg = pb.ForwardBackwardOutput(loss_fn_output_type=output.loss_fn_output_type or "ArrayRecord")
    for k, v in (output.metrics or {}).items():
        msg.metrics[k] = float(v)
    record = msg.loss_fn_outputs.add()
    record.num_datums = len(output.loss_fn_outputs)
    for name in output.loss_fn_outputs[0] if output.loss_fn_outputs else []:
        arrays = [np.asarray(o[name].to_numpy(), dtype=np.float32).ravel() for o in output.loss_fn_outputs]
        field = record.fields[name]
        field.dtype = pb.DTYPE_FLOAT32
        field.data = b"".join(a.tobytes() for a in arrays)
        field.offsets = np.cumsum([0] + [a.nbytes for a in arrays], dtype=np.int64).tobytes()
    return msg.SerializeToString()


def _sample_proto(response: types.SampleResponse) -> bytes:
    msg = pb.SampleResponse()
    for seq in response.sequences:
        s = msg.sequences.add()
        s.stop_reason = pb.STOP_REASON_STOP if seq.stop_reason == "stop" else pb.STOP_REASON_LENGTH
        s.tokens = np.asarray(seq.tokens, dtype=np.int32).tobytes()
        if seq.logprobs is not None:
            s.logprobs = np.asarray(seq.logprobs, dtype=np.float32).tobytes()
    return msg.SerializeToString()


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the SDK opens many connections at once
    daemon_threads = True


class FakeTinker:
    """``with FakeTinker(tmp_path) as server:`` then point the SDK at ``server.url``."""

    def __init__(self, store: str | Path, aliases: dict[str, tuple[str, str]] | None = None,
                 fail: dict[str, set[int]] | None = None, key: str | None = None):
        self.store = Path(store)
        self.key = key  # when given, a request with another key gets a 401, as from Tinker
        # route -> the calls (1, 2, ...) whose future fails on the server's side after the work is done
        self.fail = {route: set(calls) for route, calls in (fail or {}).items()}
        self.calls: dict[str, int] = {}
        self.failed: list[str] = []
        # a Tinker model name -> (local model it trains as, local model it samples as)
        self.aliases = dict(ALIASES if aliases is None else aliases)
        self._names: dict[str, str] = {}  # model id -> the name it was created with
        self.local = LocalServiceClient(store=self.store / "local")
        self.paths: list[str] = []  # every request path, in order
        self.keys: set[str] = set()  # the API keys the SDK sent
        self.ranks: list[int] = []  # the LoRA rank of every model created
        self.sampled: dict[str, int] = {}  # model name -> asample requests to it
        self.seeds: list[tuple[int | None, int]] = []  # (seed, num_samples) of each asample request
        self.stops: list = []  # the stop setting of every asample request, as the client sent it
        self.finished: list[tuple[str, str]] = []  # (session id, how it ended) for every session the SDK closed
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._models: dict[str, object] = {}  # model id -> local training client
        self._samplers: dict[str, object] = {}  # sampling session id -> local sampling client
        self._sampler_info: dict[str, dict] = {}  # sampling session id -> GetSamplerResponse
        self._checkpoints: dict[str, str] = {}  # tinker:// path -> local path
        self._futures: dict[str, tuple[str, object]] = {}  # request id -> ("json" | "proto", body)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeTinker:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def model_names(self) -> list[str]:
        local = [m.model_name for m in self.local.get_server_capabilities().supported_models]
        return [*local, *self.aliases]

    def context(self, name: str) -> int | None:
        """The context the server states for a model: the local model's; for an alias, the larger
        of its two local models' (None, no limit, if either has none)."""
        local = {m.model_name: m.max_context_length for m in self.local.get_server_capabilities().supported_models}
        sizes = [local.get(n) for n in self.aliases.get(name, (name,))]
        return None if None in sizes else max(sizes)

    def hugging_face_cache(self, folder: str | Path) -> dict[str, str]:
        """An offline Hugging Face cache holding the local tokenizer under every model name.

        The SDK loads a model's tokenizer with ``AutoTokenizer.from_pretrained(name)``,
        which would download it; with the returned environment (``HF_HUB_OFFLINE=1``,
        ``HF_HUB_CACHE``) set before ``transformers`` is imported, it reads it from here.
        """
        from helpers.local.model import load_tokenizer

        folder = Path(folder)
        revision = "0" * 40
        tokenizer = load_tokenizer()
        for name in self.model_names():
            repo = folder / ("models--" + name.replace("/", "--"))
            tokenizer.save_pretrained(repo / "snapshots" / revision)
            # AutoTokenizer reads the model's config too; the tiny models are Llama-style
            (repo / "snapshots" / revision / "config.json").write_text(json.dumps({"model_type": "llama"}))
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / "main").write_text(revision)
        return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(folder)}

    def environment(self, folder: str | Path, key: str) -> dict[str, str]:
        """``os.environ`` for a child process that uses this server as Tinker, with ``key``."""
        import os

        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "PD_BACKEND"}
        env.update(self.hugging_face_cache(folder), TINKER_API_KEY=key, TINKER_BASE_URL=self.url)
        return env

    # ------------------------------------------------------------------ requests
    def _future(self, kind: str, body, model_id: str | None = None) -> dict:
        rid = f"req-{next(self._ids)}"
        if self.calls.get(self._route, 0) in self.fail.get(self._route, ()):
            self.failed.append(f"{self._route} #{self.calls[self._route]}")
            kind, body = "json", {"error": "injected: the worker went away", "category": "server"}
        self._futures[rid] = (kind, body)
        return {"request_id": rid, "model_id": model_id}

    def _failed(self, error: Exception, model_id: str | None = None) -> dict:
        return self._future("json", {"error": f"{type(error).__name__}: {error}", "category": "user"}, model_id)

    def _taken(self, model_id: str, kind: str, name: str) -> dict:
        """A save under a name already saved fails (the SDK's save_state has ``overwrite=False``
        by default; the fake holds every save to that)."""
        return self._failed(FileExistsError(f"tinker://{model_id}/{kind}/{name} already exists"), model_id)

    def _tinker_path(self, model_id: str, kind: str, name: str, local_path: str) -> str:
        path = f"tinker://{model_id}/{kind}/{name}"
        self._checkpoints[path] = local_path
        return path

    def handle(self, path: str, body: bytes, content_type: str) -> tuple[str, object]:
        """(kind, response) for one request: kind "json" or "proto"."""
        if content_type.startswith("application/x-protobuf"):
            request = None
        else:
            request = json.loads(body or b"{}")
        route = path.rsplit("/api/v1/", 1)[-1]
        self._route = route
        self.calls[route] = self.calls.get(route, 0) + 1
        if route in ("client/config", "client/dynamic_config", "telemetry"):
            return "json", {"status": "accepted"} if route == "telemetry" else {}
        if route == "healthz":
            return "json", {"status": "ok"}
        if route == "create_session":
            return "json", {"type": "create_session", "session_id": f"session-{next(self._ids)}"}
        if route == "session_heartbeat":
            return "json", {"type": "session_heartbeat"}
        if route.startswith("sessions/") and route.endswith("/finish"):
            self.finished.append((route.split("/")[1], request["reason"]["type"]))
            return "json", None
        if route == "get_server_capabilities":
            # one more listed model without sampling capacity, as a real server may list: never asked
            return "json", {"supported_models": [*({"model_name": name, "max_context_length": self.context(name)}
                                                   for name in self.model_names()),
                                                 {"model_name": NO_CAPACITY, "sampleable": False}]}
        if route == "create_model":
            lora = request.get("lora_config") or {}
            base = self.aliases.get(request["base_model"], (request["base_model"],))[0]
            client = self.local.create_lora_training_client(base, rank=lora.get("rank", 32), seed=lora.get("seed")).result()
            self.ranks.append(lora.get("rank", 32))
            model_id = f"model-{next(self._ids)}"
            self._models[model_id] = client
            self._names[model_id] = request["base_model"]
            return "json", self._future("json", {"model_id": model_id, "type": "create_model"}, model_id)
        if route == "get_info":  # the SDK then loads the tokenizer by this name: see hugging_face_cache
            name = self._names[request["model_id"]]
            return "json", {"type": "get_info", "model_id": request["model_id"], "is_lora": True,
                            "model_data": {"model_name": name}}
        if route == "forward_backward":
            msg = pb.ForwardBackwardRequest.FromString(body)
            client = self._models[msg.model_id]
            data = [_datum(d) for d in msg.data]
            call = client.forward if msg.forward_only else client.forward_backward
            try:
                out = call(data, msg.loss_fn).result()
            except Exception as e:
                return "json", self._failed(e, msg.model_id)
            return "json", self._future("proto", _fwdbwd_proto(out), msg.model_id)
        if route == "optim_step":
            client = self._models[request["model_id"]]
            adam = types.AdamParams(**request["adam_params"])
            client.optim_step(adam).result()
            return "json", self._future("json", {"metrics": {}}, request["model_id"])
        if route == "save_weights":
            client = self._models[request["model_id"]]
            if f"tinker://{request['model_id']}/weights/{request['path']}" in self._checkpoints:
                return "json", self._taken(request["model_id"], "weights", request["path"])
            local = client.save_state(request["path"]).result().path
            path = self._tinker_path(request["model_id"], "weights", request["path"], local)
            return "json", self._future("json", {"path": path, "type": "save_weights"}, request["model_id"])
        if route == "save_weights_for_sampler":
            client = self._models[request["model_id"]]
            name = request.get("path") or f"snapshot-{next(self._ids)}"
            if f"tinker://{request['model_id']}/sampler_weights/{name}" in self._checkpoints:
                return "json", self._taken(request["model_id"], "sampler_weights", name)
            local = client.save_weights_for_sampler(name).result().path
            if request.get("path") is None:  # save_weights_and_get_sampling_client: a session on the snapshot
                session = f"sampling-{next(self._ids)}"
                self._samplers[session] = self.local.create_sampling_client(model_path=local).result()
                self._sampler_info[session] = {"sampler_id": session, "base_model": self._names[request["model_id"]]}
                return "json", self._future("json", {"sampling_session_id": session}, request["model_id"])
            path = self._tinker_path(request["model_id"], "sampler_weights", name, local)
            return "json", self._future("json", {"path": path, "type": "save_weights_for_sampler"}, request["model_id"])
        if route == "load_weights":
            local = self._checkpoints[request["path"]]
            model_id = request.get("model_id")
            if model_id is None:  # a new model from the checkpoint, named as the SDK names it
                model_id = f"{request['session_id']}:train:{request['model_seq_id']}"
                make = (self.local.create_training_client_from_state_with_optimizer if request["optimizer"]
                        else self.local.create_training_client_from_state)
                self._models[model_id] = make(local).result()
                self._names[model_id] = self._names[request["path"].split("/")[2]]
            else:
                load = self._models[model_id].load_state_with_optimizer if request["optimizer"] else self._models[model_id].load_state
                load(local).result()
            return "json", self._future("json", {"path": request["path"], "type": "load_weights"}, model_id)
        if route == "create_sampling_session":
            model_path = request.get("model_path")
            base = request.get("base_model")
            local = self.local.create_sampling_client(model_path=self._checkpoints[model_path] if model_path else None,
                                                      base_model=self.aliases.get(base, (None, base))[1]).result()
            session = f"sampling-{next(self._ids)}"
            self._samplers[session] = local
            self._sampler_info[session] = {"sampler_id": session, "model_path": model_path,
                                           "base_model": base or self._names[model_path.split("/")[2]]}
            return "json", {"type": "create_sampling_session", "sampling_session_id": session}
        if route == "asample":
            sampler = self._samplers[request["sampling_session_id"]]
            name = self._sampler_info[request["sampling_session_id"]]["base_model"]
            self.sampled[name] = self.sampled.get(name, 0) + 1
            prompt = types.ModelInput.model_validate(request["prompt"])
            params = types.SamplingParams.model_validate(request["sampling_params"])
            self.stops.append(params.stop)
            if params.stop is None:  # a server's own end-of-sequence set need not hold the template's end of
                params = params.model_copy(update={"stop": []})  # turn: the fake assumes the worst, so an
                # implicit stop samples on to max_tokens
            self.seeds.append((params.seed, request.get("num_samples", 1)))
            try:  # a prompt and max_tokens over the model's context are the user's error, as on Tinker
                out = sampler.sample(prompt, request.get("num_samples", 1), params).result()
                if params.seed is not None and len(out.sequences) > 1:  # as Tinker's server does
                    # (thinking-machines-lab/tinker-feedback#79): a seeded request's samples are copies
                    out = dataclasses.replace(out, sequences=[out.sequences[0]] * len(out.sequences))
            except Exception as e:
                return "json", self._failed(e)
            promise = self._future("proto", _sample_proto(out))
            return "json", {**promise, "sample_sequence_ids": [f"{promise['request_id']}-{i}" for i in range(len(out.sequences))]}
        if route.startswith("samplers/"):
            return "json", self._sampler_info[route.split("/", 1)[1]]
        if route == "retrieve_future":
            return self._futures[request["request_id"]]
        raise KeyError(route)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                server.paths.append(self.path)
                if self.headers.get("x-api-key"):
                    server.keys.add(self.headers["x-api-key"])
                if server.key is not None and self.headers.get("x-api-key") != server.key:
                    kind, out, status = "json", {"error": "Invalid API key"}, 401
                else:
                    try:
                        with server._lock:
                            kind, out = server.handle(self.path, body, self.headers.get("content-type", ""))
                        status = 200
                    except KeyError as e:
                        kind, out, status = "json", {"error": f"fake Tinker server: no {e}"}, 404
                    except Exception as e:  # noqa: BLE001 (a 400 is not retried: the test fails at once, with the reason)
                        kind, out, status = "json", {"error": f"fake Tinker server: {type(e).__name__}: {e}"}, 400
                payload = out if kind == "proto" else json.dumps(out).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/x-protobuf" if kind == "proto" else "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on this request (a cancelled run): nothing to answer

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        return Handler
