"""An in-process implementation of Tinker's client interface, on PyTorch, for the CPU.

The three clients mirror ``tinker.ServiceClient``, ``tinker.TrainingClient`` and
``tinker.SamplingClient``: same method names, same parameters, the real
``tinker.types`` objects in and out, and futures that support ``.result()`` and
``await`` (also inside Jupyter's running event loop). Code written against this
module runs unchanged against Tinker; ``tests/test_local_contract.py`` checks
that against the installed SDK.

Semantics kept from Tinker:

* ``forward_backward`` adds gradients until ``optim_step`` applies and clears
  them, so two calls then one step equal one call on both batches.
* ``cross_entropy`` is ``sum_i -weights[i] * logprob(target_tokens[i])`` over all
  datums (not a mean); each datum's logprobs come back in ``loss_fn_outputs``
  and the total in ``metrics["loss:sum"]``.
* ``optim_step`` is AdamW with Tinker's defaults (no weight decay unless asked).
* ``sample`` calls that arrive together (for example many ``sample_async`` calls
  from one event loop) are run as one batch, so labelling thousands of short
  queries costs a few forward passes, not thousands.

Checkpoints are folders on disk, named by ``local://`` paths.

Example
-------
>>> from tinker import types
>>> service = LocalServiceClient()
>>> trainer = service.create_lora_training_client("local/tiny", seed=0).result()
>>> tok = trainer.get_tokenizer()
>>> ids = tok.encode("hello world")
>>> datum = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
...     loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)})
>>> out = trainer.forward_backward([datum], "cross_entropy").result()
>>> out.metrics["loss:sum"] > 0
True
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tinker import types

from .model import TINY_MODELS, TinyConfig, build_model, load_tokenizer

TEACHER_MODEL = "local/policy-teacher"
SUPPORTED_LOSSES = ("cross_entropy",)
DEFAULT_STORE = Path(os.environ.get("HELPERS_LOCAL_STORE", Path.home() / ".cache" / "prompt-distillation"))
MAX_BATCH_ROWS = 64


class LocalBackendError(ValueError):
    """A request the local backend refuses; the message says what to change."""


# --------------------------------------------------------------------------- futures


class LocalFuture:
    """A future like Tinker's ``APIFuture``: ``.result(timeout)``, ``await``, ``result_async``."""

    def __init__(self, future: Future | None = None):
        self._future = future if future is not None else Future()

    @classmethod
    def completed(cls, value: Any) -> LocalFuture:
        f = cls()
        f._future.set_result(value)
        return f

    @classmethod
    def failed(cls, error: BaseException) -> LocalFuture:
        f = cls()
        f._future.set_exception(error)
        return f

    @classmethod
    def run(cls, fn, *args, **kwargs) -> LocalFuture:
        """Run ``fn`` now, in this thread, and wrap its value or its error."""
        try:
            return cls.completed(fn(*args, **kwargs))
        except Exception as e:  # the error surfaces at .result(), as on Tinker
            return cls.failed(e)

    def result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout)

    async def result_async(self, timeout: float | None = None) -> Any:
        return await asyncio.wait_for(asyncio.wrap_future(self._future), timeout)

    def future(self) -> Future:
        return self._future

    def done(self) -> bool:
        return self._future.done()

    def __await__(self):
        return asyncio.wrap_future(self._future).__await__()


# --------------------------------------------------------------------------- models


def _torch():
    import torch

    return torch


@dataclass
class LoadedModel:
    """A model the local backend can run: weights, tokenizer and where they came from."""

    name: str
    model: Any
    tokenizer: Any
    max_context: int
    rank: int | None = None
    kind: str = "tiny"  # "tiny" (all weights train) or "hf" (LoRA through peft)

    def trainable_state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.named_parameters() if v.requires_grad}

    def load_trainable_state(self, state: Mapping) -> None:
        params = dict(self.model.named_parameters())
        missing = [k for k in state if k not in params]
        if missing:
            raise LocalBackendError(f"checkpoint does not fit model {self.name}: unknown weights {missing[:3]}")
        torch = _torch()
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v)


def known_models() -> list[str]:
    return [*TINY_MODELS, TEACHER_MODEL]


def load_model(base_model: str, rank: int | None = None, seed: int | None = None, train: bool = False) -> LoadedModel:
    """Build ``local/tiny*`` from its config, or load a Hugging Face causal LM from a folder.

    A Hugging Face model trained here gets LoRA adapters of ``rank`` through ``peft``.
    """
    if base_model in TINY_MODELS:
        config = TINY_MODELS[base_model]
        if seed is not None:
            config = TinyConfig(**{**config.__dict__, "seed": seed})
        tok = load_tokenizer()
        model = build_model(config, vocab_size=len(tok))
        return LoadedModel(base_model, model, tok, config.max_context, rank=rank, kind="tiny")
    path = Path(base_model).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        if seed is not None:
            torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        max_context = int(getattr(model.config, "max_position_embeddings", 2048))
        if train or rank is not None:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=rank or 32, lora_alpha=rank or 32, target_modules="all-linear"))
        return LoadedModel(str(path), model, tok, max_context, rank=rank, kind="hf")
    raise LocalBackendError(
        f"unknown local model {base_model!r}; known models: {', '.join(known_models())}, "
        "or a folder holding a Hugging Face causal LM (config.json and weights)"
    )


# --------------------------------------------------------------------------- checkpoints


def _path_to_dir(path: str) -> Path:
    if not isinstance(path, str) or not path.startswith("local://"):
        raise LocalBackendError(f"not a local checkpoint path: {path!r} (expected local://...)")
    return Path(path[len("local://") :])


def save_checkpoint(directory: Path, loaded: LoadedModel, optimizer=None, step: int = 0) -> str:
    """Write weights (and optimiser state) to ``directory`` atomically; return its local:// path."""
    torch = _torch()
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        torch.save(loaded.trainable_state(), tmp / "weights.pt")
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        meta = {"base_model": loaded.name, "rank": loaded.rank, "kind": loaded.kind, "step": step}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return f"local://{directory.resolve()}"


def read_checkpoint(path: str) -> tuple[dict, Path]:
    directory = _path_to_dir(path)
    meta_file = directory / "meta.json"
    if not meta_file.exists():
        raise LocalBackendError(f"no local checkpoint at {path}")
    return json.loads(meta_file.read_text()), directory


def load_checkpoint_model(path: str, train: bool = False) -> tuple[LoadedModel, dict, Path]:
    torch = _torch()
    meta, directory = read_checkpoint(path)
    loaded = load_model(meta["base_model"], rank=meta.get("rank"), train=train or meta.get("kind") == "hf")
    loaded.load_trainable_state(torch.load(directory / "weights.pt", weights_only=True))
    return loaded, meta, directory


# --------------------------------------------------------------------------- sampling


@dataclass
class _SampleJob:
    prompt: list[int]
    num_samples: int
    params: types.SamplingParams
    topk: int
    future: Future = field(default_factory=Future)


def _stop_spec(params: types.SamplingParams, tokenizer) -> tuple[set[int], list[str]]:
    stop = params.stop
    if stop is None:
        return {tokenizer.eos_token_id}, []
    if isinstance(stop, str):
        return set(), [stop]
    ids = {s for s in stop if isinstance(s, int)}
    strings = [s for s in stop if isinstance(s, str)]
    return ids, strings


class TorchSampler:
    """Runs sampling jobs for one torch model, batching the jobs that arrive together."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self._queue: queue.Queue[_SampleJob] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches_run = 0

    # Jobs go to one worker thread; whatever is queued when it wakes is one batch.
    def submit(self, job: _SampleJob) -> Future:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._worker, daemon=True, name="local-sampler")
                self._thread.start()
        self._queue.put(job)
        return job.future

    def _worker(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=30)
            except queue.Empty:
                return  # idle: the thread ends, the next submit starts a new one
            jobs = [job]
            time.sleep(0.002)  # let the other calls of this event-loop turn arrive
            while len(jobs) < 4 * MAX_BATCH_ROWS:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self.run_jobs(jobs)
                for j, r in zip(jobs, results, strict=True):
                    j.future.set_result(r)
            except Exception as e:
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)

    def run_jobs(self, jobs: Sequence[_SampleJob]) -> list[types.SampleResponse]:
        """Sample every job; rows of similar length run together, up to MAX_BATCH_ROWS at a time."""
        torch = _torch()
        rows = []  # (job index, prompt, params, generator)
        for ji, job in enumerate(jobs):
            for s in range(job.num_samples):
                gen = torch.Generator()
                gen.manual_seed(job.params.seed + s if job.params.seed is not None else int.from_bytes(os.urandom(4), "little"))
                rows.append((ji, job, gen))
        outputs: list[list] = [[] for _ in jobs]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][1].prompt))
        results_by_row = {}
        for start in range(0, len(order), MAX_BATCH_ROWS):
            chunk = [rows[i] for i in order[start : start + MAX_BATCH_ROWS]]
            for i, seq in zip(order[start : start + MAX_BATCH_ROWS], self._generate(chunk), strict=True):
                results_by_row[i] = seq
        self.batches_run += 1
        for i, (ji, _job, _gen) in enumerate(rows):
            outputs[ji].append(results_by_row[i])
        return [types.SampleResponse(sequences=seqs) for seqs in outputs]

    def _generate(self, chunk) -> list[types.SampledSequence]:
        torch = _torch()
        from transformers import DynamicCache

        model, tok = self.loaded.model, self.loaded.tokenizer
        model.eval()
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        prompts = [job.prompt for _, job, _ in chunk]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding: every row's next token is at the end
            ids[r, width - len(p) :] = torch.tensor(p)
            mask[r, width - len(p) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        limits = [min(job.params.max_tokens or 256, self.loaded.max_context - len(job.prompt)) for _, job, _ in chunk]
        stops = [_stop_spec(job.params, tok) for _, job, _ in chunk]
        tokens: list[list[int]] = [[] for _ in chunk]
        logps: list[list[float]] = [[] for _ in chunk]
        topks: list[list] = [[] for _ in chunk]
        reasons: list[str | None] = [None] * len(chunk)
        cache = {_cache_argument(model): DynamicCache()}
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **cache)
            for _step in range(max(limits)):
                logits = out.logits[:, -1, :].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                next_ids = torch.full((len(chunk),), pad, dtype=torch.long)
                for r, (_, job, gen) in enumerate(chunk):
                    if reasons[r] is not None:
                        continue
                    t = _choose(logits[r], job.params, gen)
                    next_ids[r] = t
                    tokens[r].append(t)
                    logps[r].append(float(logprobs[r, t]))
                    if job.topk:
                        v, ix = logprobs[r].topk(job.topk)
                        topks[r].append(list(zip(ix.tolist(), v.tolist(), strict=True)))
                    stop_ids, stop_strings = stops[r]
                    if t in stop_ids or (stop_strings and any(s in tok.decode(tokens[r]) for s in stop_strings)):
                        reasons[r] = "stop"
                    elif len(tokens[r]) >= limits[r]:
                        reasons[r] = "length"
                if all(reason is not None for reason in reasons):
                    break
                mask = torch.cat([mask, torch.ones((len(chunk), 1), dtype=torch.long)], dim=1)
                positions = positions[:, -1:] + 1
                out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=positions, use_cache=True, **cache)
        return [
            types.SampledSequence(
                stop_reason=reasons[r] or "length",
                sequence_id=uuid.uuid4().hex,
                tokens_np=np.asarray(tokens[r], dtype=np.int32),
                logprobs_np=np.asarray(logps[r], dtype=np.float32),
                _topk_logprobs_list=topks[r] if chunk[r][1].topk else None,
            )
            for r in range(len(chunk))
        ]

    def compute_logprobs(self, prompt: list[int]) -> list[float | None]:
        torch = _torch()
        model = self.loaded.model
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt])).logits[0].float()
            lp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(prompt[1:])[:, None])[:, 0]
        return [None, *lp.tolist()]


def _cache_argument(model) -> str:
    """Newer transformers call the KV cache argument ``cache``; older ones ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _choose(logits, params: types.SamplingParams, gen) -> int:
    """Pick one token: greedy at temperature 0, else top-k / top-p sampling."""
    torch = _torch()
    if params.temperature <= 0:
        return int(logits.argmax())
    scaled = logits / params.temperature
    if params.top_k and params.top_k > 0:
        kth = scaled.topk(min(params.top_k, scaled.numel())).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1:
        sorted_p, sorted_ix = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < params.top_p
        probs = torch.zeros_like(probs).scatter(0, sorted_ix[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


class LocalSamplingClient:
    """Same calls as ``tinker.SamplingClient``: ``sample``, ``compute_logprobs``, their ``_async`` forms."""

    def __init__(self, engine, base_model: str, model_path: str | None = None):
        self._engine = engine
        self._base_model = base_model
        self.model_path = model_path

    def _check(self, prompt: types.ModelInput, num_samples: int, params: types.SamplingParams) -> list[int]:
        if params.max_tokens is not None and params.max_tokens < 1:
            raise LocalBackendError(f"max_tokens must be at least 1, got {params.max_tokens}")
        if num_samples < 1:
            raise LocalBackendError(f"num_samples must be at least 1, got {num_samples}")
        ids = prompt.to_ints()
        limit = self._engine.max_context
        if limit is not None and len(ids) >= limit:
            raise LocalBackendError(
                f"prompt of {len(ids)} tokens does not fit the context of {self._base_model} ({limit} tokens)"
            )
        return ids

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
    ) -> LocalFuture:
        """Sample ``num_samples`` continuations of ``prompt``; calls made together are batched."""
        ids = self._check(prompt, num_samples, sampling_params)
        job = _SampleJob(ids, num_samples, sampling_params, topk_sample_logprobs)
        return LocalFuture(self._engine.submit(job))

    async def sample_async(self, prompt, num_samples, sampling_params, **kwargs) -> types.SampleResponse:
        return await self.sample(prompt, num_samples, sampling_params, **kwargs)

    def compute_logprobs(self, prompt: types.ModelInput) -> LocalFuture:
        """Log-probability of each prompt token given the ones before it (``None`` for the first)."""
        return LocalFuture.run(self._engine.compute_logprobs, prompt.to_ints())

    async def compute_logprobs_async(self, prompt: types.ModelInput) -> list[float | None]:
        return await self.compute_logprobs(prompt)

    def get_tokenizer(self):
        return self._engine.tokenizer

    def get_base_model(self) -> str:
        return self._base_model

    async def get_base_model_async(self) -> str:
        return self._base_model


class _TorchEngine(TorchSampler):
    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def max_context(self) -> int:
        return self.loaded.max_context


# --------------------------------------------------------------------------- training


def _datum_arrays(i: int, datum: types.Datum) -> tuple[list[int], np.ndarray, np.ndarray]:
    ids = datum.model_input.to_ints()
    inputs = datum.loss_fn_inputs
    if "target_tokens" not in inputs:
        raise LocalBackendError(f"datum {i}: loss_fn_inputs has no 'target_tokens'")
    targets = inputs["target_tokens"].to_numpy().astype(np.int64)
    weights = inputs["weights"].to_numpy().astype(np.float32) if "weights" in inputs else np.ones(len(targets), np.float32)
    if targets.ndim != 1 or weights.ndim != 1:
        raise LocalBackendError(f"datum {i}: target_tokens and weights must be 1-D")
    if not (len(ids) == len(targets) == len(weights)):
        raise LocalBackendError(
            f"datum {i}: lengths disagree: model_input has {len(ids)} tokens, "
            f"target_tokens {len(targets)}, weights {len(weights)}"
        )
    if len(ids) == 0:
        raise LocalBackendError(f"datum {i}: empty model_input")
    return ids, targets, weights


class LocalTrainingClient:
    """Same calls as ``tinker.TrainingClient``, training the local model in this process."""

    def __init__(self, loaded: LoadedModel, store: Path, run_id: str | None = None):
        self._loaded = loaded
        self._store = Path(store)
        self.run_id = run_id or f"run-{uuid.uuid4().hex[:10]}"
        self._optimizer = None
        self.step = 0
        for p in loaded.model.parameters():
            if loaded.kind == "tiny":
                p.requires_grad_(True)

    # ---- loss
    def _run(self, data: Sequence[types.Datum], loss_fn: str, backward: bool) -> types.ForwardBackwardOutput:
        torch = _torch()
        if loss_fn not in SUPPORTED_LOSSES:
            raise LocalBackendError(f"unknown loss_fn {loss_fn!r}; the local backend supports: {', '.join(SUPPORTED_LOSSES)}")
        if not data:
            raise LocalBackendError("forward_backward needs at least one datum")
        arrays = [_datum_arrays(i, d) for i, d in enumerate(data)]
        longest = max(len(a[0]) for a in arrays)
        if longest > self._loaded.max_context:
            raise LocalBackendError(
                f"datum of {longest} tokens does not fit the context of {self._loaded.name} ({self._loaded.max_context} tokens)"
            )
        n = len(arrays)
        ids = torch.zeros((n, longest), dtype=torch.long)
        targets = torch.zeros((n, longest), dtype=torch.long)
        weights = torch.zeros((n, longest), dtype=torch.float32)
        mask = torch.zeros((n, longest), dtype=torch.long)
        for r, (x, t, w) in enumerate(arrays):  # right padding, with weight 0 on the pad
            ids[r, : len(x)] = torch.tensor(x)
            targets[r, : len(t)] = torch.from_numpy(t)
            weights[r, : len(w)] = torch.from_numpy(w)
            mask[r, : len(x)] = 1
        model = self._loaded.model
        model.train(backward)
        with torch.set_grad_enabled(backward):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            # cross_entropy is log-softmax and gather fused: the same numbers, less memory.
            logprobs = -torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(n, longest)
            loss = -(logprobs * weights).sum()
            if backward:
                loss.backward()
        lp = logprobs.detach()
        outputs = [{"logprobs": types.TensorData.from_torch(lp[r, : len(arrays[r][0])].clone())} for r in range(n)]
        return types.ForwardBackwardOutput(
            loss_fn_output_type="TensorData",
            loss_fn_outputs=outputs,
            metrics={"loss:sum": float(loss.detach())},
        )

    def forward_backward(self, data: list[types.Datum], loss_fn: str = "cross_entropy", loss_fn_config=None) -> LocalFuture:
        """Compute the loss and add its gradients to the ones already accumulated."""
        return LocalFuture.run(self._run, data, loss_fn, True)

    def forward(self, data: list[types.Datum], loss_fn: str = "cross_entropy", loss_fn_config=None) -> LocalFuture:
        """Compute the loss and logprobs without gradients."""
        return LocalFuture.run(self._run, data, loss_fn, False)

    async def forward_backward_async(self, data, loss_fn="cross_entropy", loss_fn_config=None) -> LocalFuture:
        return self.forward_backward(data, loss_fn, loss_fn_config)

    async def forward_async(self, data, loss_fn="cross_entropy", loss_fn_config=None) -> LocalFuture:
        return self.forward(data, loss_fn, loss_fn_config)

    # ---- optimiser
    def _step(self, params: types.AdamParams) -> types.OptimStepResponse:
        torch = _torch()
        if not isinstance(params, types.AdamParams):
            raise LocalBackendError("the local backend's optim_step takes types.AdamParams")
        if params.learning_rate < 0:
            raise LocalBackendError(f"learning_rate must be >= 0, got {params.learning_rate}")
        trainable = [p for p in self._loaded.model.parameters() if p.requires_grad]
        if self._optimizer is None:
            self._optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate)
        for group in self._optimizer.param_groups:
            group.update(lr=params.learning_rate, betas=(params.beta1, params.beta2), eps=params.eps, weight_decay=params.weight_decay)
        metrics = {}
        if params.grad_clip_norm > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(trainable, params.grad_clip_norm))
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return types.OptimStepResponse(metrics={**metrics, "learning_rate": params.learning_rate})

    def optim_step(self, optim_params: types.AdamParams | None = None, *, adam_params: types.AdamParams | None = None) -> LocalFuture:
        """Apply the accumulated gradients with AdamW, then clear them."""
        return LocalFuture.run(self._step, optim_params or adam_params or types.AdamParams())

    async def optim_step_async(self, optim_params=None, *, adam_params=None) -> LocalFuture:
        return self.optim_step(optim_params, adam_params=adam_params)

    # ---- checkpoints
    def _dir(self, kind: str, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise LocalBackendError(f"bad checkpoint name {name!r}")
        return self._store / self.run_id / kind / name

    def save_state(self, name: str, ttl_seconds: int | None = None, overwrite: bool = False, user_metadata=None) -> LocalFuture:
        """Save weights and optimiser state; the path resumes training with ``load_state_with_optimizer``."""
        def save():
            path = save_checkpoint(self._dir("state", name), self._loaded, self._optimizer, self.step)
            return types.SaveWeightsResponse(path=path)
        return LocalFuture.run(save)

    async def save_state_async(self, name: str, ttl_seconds=None, overwrite: bool = False, user_metadata=None) -> LocalFuture:
        return self.save_state(name, ttl_seconds, overwrite, user_metadata)

    def _load(self, path: str, optimizer: bool) -> types.LoadWeightsResponse:
        torch = _torch()
        meta, directory = read_checkpoint(path)
        if meta["base_model"] != self._loaded.name:
            raise LocalBackendError(f"checkpoint {path} is of {meta['base_model']}, this client trains {self._loaded.name}")
        self._loaded.load_trainable_state(torch.load(directory / "weights.pt", weights_only=True))
        self.step = int(meta.get("step", 0))
        if optimizer and (directory / "optimizer.pt").exists():
            trainable = [p for p in self._loaded.model.parameters() if p.requires_grad]
            self._optimizer = torch.optim.AdamW(trainable)
            self._optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))
        elif not optimizer:
            self._optimizer = None
        return types.LoadWeightsResponse(path=path)

    def load_state(self, path: str, weights_access_token: str | None = None) -> LocalFuture:
        """Load weights only; the optimiser starts afresh."""
        return LocalFuture.run(self._load, path, False)

    def load_state_with_optimizer(self, path: str, weights_access_token: str | None = None) -> LocalFuture:
        """Load weights and the optimiser's moments, to resume training exactly."""
        return LocalFuture.run(self._load, path, True)

    async def load_state_async(self, path: str, weights_access_token=None) -> LocalFuture:
        return self.load_state(path)

    def save_weights_for_sampler(self, name: str, ttl_seconds: int | None = None, user_metadata=None) -> LocalFuture:
        """Save the weights for sampling; pass the path to ``create_sampling_client``."""
        def save():
            path = save_checkpoint(self._dir("sampler", name), self._loaded, None, self.step)
            return types.SaveWeightsForSamplerResponse(path=path)
        return LocalFuture.run(save)

    async def save_weights_for_sampler_async(self, name: str, ttl_seconds=None, user_metadata=None) -> LocalFuture:
        return self.save_weights_for_sampler(name, ttl_seconds, user_metadata)

    def save_weights_and_get_sampling_client(self, name: str | None = None, retry_config=None, **kwargs) -> LocalFuture:
        """A sampling client on a snapshot of the current weights (training goes on unaffected)."""
        def snapshot():
            frozen = copy.deepcopy(self._loaded)
            frozen.model.eval()
            for p in frozen.model.parameters():
                p.requires_grad_(False)
            return LocalSamplingClient(_TorchEngine(frozen), self._loaded.name)
        return LocalFuture.run(snapshot)

    async def save_weights_and_get_sampling_client_async(self, name: str | None = None, retry_config=None) -> LocalFuture:
        return self.save_weights_and_get_sampling_client(name, retry_config)

    def create_sampling_client(self, model_path: str, retry_config=None) -> LocalFuture:
        return LocalFuture.run(_sampling_client_from_path, model_path)

    def get_tokenizer(self):
        return self._loaded.tokenizer

    def get_base_model(self) -> str:
        return self._loaded.name

    @property
    def model(self):
        """The torch module being trained (local backend only; for benchmarks and tests)."""
        return self._loaded.model


def _sampling_client_from_path(model_path: str) -> LocalSamplingClient:
    loaded, meta, _ = load_checkpoint_model(model_path)
    for p in loaded.model.parameters():
        p.requires_grad_(False)
    return LocalSamplingClient(_TorchEngine(loaded), meta["base_model"], model_path=model_path)


# --------------------------------------------------------------------------- service


class LocalServiceClient:
    """Same calls as ``tinker.ServiceClient``; every client it makes runs in this process.

    Parameters
    ----------
    store : folder for checkpoints (default ``$HELPERS_LOCAL_STORE`` or
        ``~/.cache/prompt-distillation``).
    """

    backend = "local"

    def __init__(self, store: str | os.PathLike | None = None):
        self.store = Path(store) if store is not None else DEFAULT_STORE
        self._teacher_engine = None

    def get_server_capabilities(self) -> types.GetServerCapabilitiesResponse:
        models = [
            types.SupportedModel(model_name=name, max_context_length=cfg.max_context, trainable=True, sampleable=True)
            for name, cfg in TINY_MODELS.items()
        ]
        models.append(types.SupportedModel(model_name=TEACHER_MODEL, max_context_length=None, trainable=False, sampleable=True))
        return types.GetServerCapabilitiesResponse(supported_models=models)

    async def get_server_capabilities_async(self) -> types.GetServerCapabilitiesResponse:
        return self.get_server_capabilities()

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
    ) -> LocalFuture:
        """A training client for ``base_model`` (see :mod:`helpers.local.model` for what trains)."""
        def create():
            if base_model == TEACHER_MODEL:
                raise LocalBackendError(f"{TEACHER_MODEL} is a rule-based stand-in: it samples but cannot be trained")
            if not isinstance(rank, int) or rank < 1:
                raise LocalBackendError(f"rank must be a whole number >= 1, got {rank!r}")
            return LocalTrainingClient(load_model(base_model, rank=rank, seed=seed, train=True), self.store)
        return LocalFuture.run(create)

    async def create_lora_training_client_async(self, base_model: str, rank: int = 32, seed: int | None = None, **kwargs) -> LocalTrainingClient:
        return await self.create_lora_training_client(base_model, rank, seed, **kwargs)

    def create_training_client_from_state(self, path: str, user_metadata=None) -> LocalFuture:
        def create():
            meta, _ = read_checkpoint(path)
            client = LocalTrainingClient(load_model(meta["base_model"], rank=meta.get("rank"), train=True), self.store)
            client.load_state(path).result()
            return client
        return LocalFuture.run(create)

    def create_training_client_from_state_with_optimizer(self, path: str, user_metadata=None) -> LocalFuture:
        def create():
            meta, _ = read_checkpoint(path)
            client = LocalTrainingClient(load_model(meta["base_model"], rank=meta.get("rank"), train=True), self.store)
            client.load_state_with_optimizer(path).result()
            return client
        return LocalFuture.run(create)

    def create_sampling_client(self, model_path: str | None = None, base_model: str | None = None, retry_config=None) -> LocalFuture:
        """A sampling client on a saved ``model_path``, or on ``base_model`` as it is."""
        def create():
            if model_path is None and base_model is None:
                raise LocalBackendError("Either model_path or base_model must be provided")
            if model_path is not None:
                return _sampling_client_from_path(model_path)
            if base_model == TEACHER_MODEL:
                if self._teacher_engine is None:
                    from ..teacher import PolicyTeacherEngine

                    self._teacher_engine = PolicyTeacherEngine(load_tokenizer())
                return LocalSamplingClient(self._teacher_engine, TEACHER_MODEL)
            loaded = load_model(base_model)
            loaded.model.eval()
            return LocalSamplingClient(_TorchEngine(loaded), base_model)
        return LocalFuture.run(create)

    async def create_sampling_client_async(self, model_path: str | None = None, base_model: str | None = None, retry_config=None) -> LocalSamplingClient:
        return await self.create_sampling_client(model_path, base_model, retry_config)
