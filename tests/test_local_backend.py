"""The offline backend against Tinker's semantics and the installed SDK's interface."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import warnings

import numpy as np
import pytest
import tinker
import torch
from tinker import types

from helpers import connect
from helpers.backend import context_length
from helpers.local import (
    TEACHER_MODEL,
    LocalBackendError,
    LocalSamplingClient,
    LocalServiceClient,
    LocalTrainingClient,
)
from helpers.local.clients import length_groups
from helpers.render import conversation, model_input, render_example

# Every client method the helpers call, by class: (local class, SDK class, method names); and
# ServiceClient.close (with its context manager), which code written for Tinker calls at the end.
# test_contract_with_installed_sdk also holds every other public method the local classes share
# with the SDK (the _async forms, compute_logprobs, create_training_client_from_state, ...).
CONTRACT = [
    (LocalServiceClient, tinker.ServiceClient, [
        "create_lora_training_client", "create_lora_training_client_async", "create_sampling_client",
        "create_sampling_client_async", "create_training_client_from_state",
        "create_training_client_from_state_with_optimizer", "get_server_capabilities", "close", "__enter__", "__exit__",
    ]),
    (LocalTrainingClient, tinker.TrainingClient, [
        "forward", "forward_backward", "forward_backward_async", "optim_step", "optim_step_async", "save_state",
        "load_state", "load_state_with_optimizer", "save_weights_for_sampler", "save_weights_and_get_sampling_client",
        "create_sampling_client", "get_tokenizer",
    ]),
    (LocalSamplingClient, tinker.SamplingClient, ["sample", "sample_async", "compute_logprobs", "compute_logprobs_async",
                                                  "get_tokenizer", "get_base_model"]),
]


def _shared_methods(local_cls, sdk_cls, methods) -> list[str]:
    """``methods``, then every other public method of ``local_cls`` that ``sdk_cls`` has too."""
    shared = [name for name in dir(local_cls) if not name.startswith("_") and name not in methods
              and callable(getattr(local_cls, name, None)) and callable(getattr(sdk_cls, name, None))]
    return [*methods, *sorted(shared)]


def _parameters(fn) -> list[tuple[str, str, bool]]:
    """(name, kind, has a default) of each parameter but ``self``."""
    return [(p.name, p.kind.name, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(fn).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("local_cls,sdk_cls,methods", CONTRACT, ids=lambda x: getattr(x, "__name__", ""))
def test_contract_with_installed_sdk(local_cls, sdk_cls, methods):
    """Each method takes the SDK's parameters: the same names, in the same order, of the same kind
    (positional or keyword-only), no more and none folded into ``**kwargs``; a parameter has a
    default locally exactly when it has one on the SDK. Code written for Tinker, passing any of
    them by position or by name, then runs unchanged offline, and code that leaves out what the
    SDK requires (forward_backward's loss_fn, ...) fails offline too, not first on Tinker."""
    for name in _shared_methods(local_cls, sdk_cls, methods):
        assert hasattr(sdk_cls, name), f"the tinker SDK has no {sdk_cls.__name__}.{name}"
        assert hasattr(local_cls, name), f"local {local_cls.__name__} lacks {name}"
        sdk, local = _parameters(getattr(sdk_cls, name)), _parameters(getattr(local_cls, name))
        if name.startswith("__"):  # called by the with statement, by position: only the count matters
            assert len(local) == len(sdk), f"{name}: {local} vs SDK {sdk}"
            continue
        where = f"{local_cls.__name__}.{name}"
        assert [(n, k) for n, k, _ in local] == [(n, k) for n, k, _ in sdk], (
            f"{where}: parameters {[n for n, _, _ in local]} vs the SDK's {[n for n, _, _ in sdk]}")
        for (n, _, local_default), (_, _, sdk_default) in zip(local, sdk, strict=True):
            assert local_default == sdk_default, (
                f"{where}: {n!r} has a default " + ("on the SDK, none locally" if sdk_default else "locally, none on the SDK"))


@pytest.mark.parametrize("local_cls,sdk_cls,methods", CONTRACT, ids=lambda x: getattr(x, "__name__", ""))
def test_every_sdk_method_the_local_class_has_comes_with_its_async_form(local_cls, sdk_cls, methods):
    """Code written for Tinker that awaits X_async, where X runs offline, runs offline too (the
    contract test then checks its parameters, as the SDK's)."""
    missing = [f"{name}_async" for name in dir(local_cls) if not name.startswith("_") and callable(getattr(local_cls, name))
               and hasattr(sdk_cls, f"{name}_async") and not hasattr(local_cls, f"{name}_async")]
    assert missing == []


def test_a_client_future_used_as_the_client_works_with_a_warning_as_on_the_sdk(service):
    """The SDK's create_* return a future that, deprecated (a FutureWarning), also works as the
    client: code that leaves out .result() runs offline as it does on Tinker."""
    sampler = service.create_sampling_client(base_model="local/tiny")
    with pytest.warns(FutureWarning, match=r"call \.result\(\) on it"):
        assert sampler.get_tokenizer() is sampler.result().get_tokenizer()
    trainer = service.create_lora_training_client("local/tiny", seed=0)
    with pytest.warns(FutureWarning):
        assert trainer.get_info().model_name == "local/tiny"
    with pytest.warns(FutureWarning):
        assert isinstance(trainer.save_weights_and_get_sampling_client().get_base_model(), str)
    assert not hasattr(sampler, "_no_such_attribute") and sampler.done()


def test_the_async_forms_answer_as_their_sync_forms(service):
    trainer = service.create_lora_training_client("local/tiny", seed=0).result()
    path = trainer.save_state("async-forms").result().path

    async def use():
        info = await trainer.get_info_async()
        loaded = await (await trainer.load_state_with_optimizer_async(path))
        resumed = await service.create_training_client_from_state_with_optimizer_async(path)
        sampler = await trainer.create_sampling_client_async(trainer.save_weights_for_sampler("async-sampler").result().path)
        return info, loaded, resumed, sampler

    info, loaded, resumed, sampler = asyncio.run(use())
    assert info.model_name == "local/tiny" and loaded.path == path
    assert isinstance(resumed, LocalTrainingClient) and isinstance(sampler, LocalSamplingClient)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return LocalServiceClient(store=tmp_path_factory.mktemp("store"))


def _datum(tok, text: str, answer: str) -> types.Datum:
    return render_example(tok, conversation(text, answer)).to_datum()


def test_loss_matches_logprobs_and_weights(service):
    trainer = service.create_lora_training_client("local/tiny", seed=1).result()
    tok = trainer.get_tokenizer()
    data = [_datum(tok, "Guten Morgen zusammen", "de"), _datum(tok, "Buenos días a todos", "es")]
    out = trainer.forward(data, "cross_entropy").result()
    independent = 0.0
    for d, o in zip(data, out.loss_fn_outputs, strict=True):
        lp = o["logprobs"].to_numpy()
        w = d.loss_fn_inputs["weights"].to_numpy()
        assert lp.shape == w.shape
        assert np.all(lp <= 0)
        independent += float(-(lp * w).sum())
    assert out.metrics["loss:sum"] == pytest.approx(independent, rel=1e-5)
    # weight 0 contributes nothing: zero weights give zero loss
    zero = types.Datum(model_input=data[0].model_input, loss_fn_inputs={
        "target_tokens": data[0].loss_fn_inputs["target_tokens"],
        "weights": np.zeros(data[0].model_input.length, dtype=np.float32)})
    assert trainer.forward([zero], "cross_entropy").result().metrics["loss:sum"] == 0.0


def test_gradient_accumulation_equals_one_batch(tmp_path):
    import torch

    def run(split: bool):
        svc = LocalServiceClient(store=tmp_path)
        tr = svc.create_lora_training_client("local/tiny", seed=3).result()
        tok = tr.get_tokenizer()
        a, b = _datum(tok, "Merci beaucoup", "fr"), _datum(tok, "Спасибо большое", "ru")
        if split:
            tr.forward_backward([a], "cross_entropy").result()
            tr.forward_backward([b], "cross_entropy").result()
        else:
            tr.forward_backward([a, b], "cross_entropy").result()
        grads = {k: v.grad.detach().clone() for k, v in tr.model.named_parameters() if v.grad is not None}
        # Adam divides by the gradient's own size, so on weights whose gradient is tiny the
        # float rounding of summing in two calls instead of one is blown up to a visible step
        # with a small eps; an eps well above that rounding compares the steps themselves.
        tr.optim_step(types.AdamParams(learning_rate=1e-2, eps=1e-3)).result()
        return grads, {k: v.detach().clone() for k, v in tr.model.named_parameters()}

    (g1, one), (g2, two) = run(False), run(True)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for k in g1:
        assert torch.allclose(g1[k], g2[k], rtol=1e-4, atol=1e-7), k
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-5), k


@pytest.mark.parametrize("lengths,overhead", [
    ([5, 90, 7, 88, 6, 91, 40], 20), ([12] * 9, 50), ([3, 200], 0), ([3, 200], 10_000), ([1], 5)])
def test_length_groups_are_the_cheapest_split(lengths, overhead):
    import itertools

    groups = length_groups(lengths, overhead)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))

    def cost(parts):
        return sum(len(g) * max(lengths[r] for r in g) + overhead for g in parts)

    # Brute force over every split of the sorted order: none is cheaper.
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    best = min(cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)), strict=True)])
               for k in range(len(order)) for cuts in itertools.combinations(range(1, len(order)), k))
    assert cost(groups) == best
    if overhead == 0:
        assert all(len({lengths[r] for r in g}) == 1 for g in groups)  # no padding at all
    if overhead >= 10_000:
        assert len(groups) == 1


def test_splitting_a_batch_by_length_changes_no_number(service, monkeypatch):
    """One call on a batch of mixed lengths gives the same loss, logprobs and gradients
    whether the backend runs it as one padded tensor or in groups of similar length."""
    texts = ["Hi", "Merci beaucoup pour tout", "x" * 120, "Спасибо", "Das ist ein etwas längerer Satz auf Deutsch."]

    def run(overhead):
        monkeypatch.setattr(LocalTrainingClient, "call_overhead_tokens", overhead)
        tr = service.create_lora_training_client("local/tiny", seed=5).result()
        tok = tr.get_tokenizer()
        data = [render_example(tok, conversation(t, "ot")).to_datum(prompt_weight=0.5) for t in texts]
        out = tr.forward_backward(data, "cross_entropy").result()
        grads = {k: v.grad.detach().clone() for k, v in tr.model.named_parameters() if v.grad is not None}
        return out, grads

    (whole, g1), (split, g2) = run(10**9), run(0)
    assert whole.metrics["loss:sum"] == pytest.approx(split.metrics["loss:sum"], rel=1e-5)
    for a, b in zip(whole.loss_fn_outputs, split.loss_fn_outputs, strict=True):
        assert np.allclose(a["logprobs"].to_numpy(), b["logprobs"].to_numpy(), atol=1e-4)
    for k in g1:
        assert np.allclose(g1[k].numpy(), g2[k].numpy(), rtol=1e-3, atol=1e-6), k


def test_memorisation_then_greedy_sampling(service):
    trainer = service.create_lora_training_client("local/tiny", seed=0).result()
    tok = trainer.get_tokenizer()
    pairs = [("alpha beta gamma", "el"), ("uno dos tres", "es"), ("eins zwei drei", "de"), ("one two three", "en")]
    data = [_datum(tok, q, a) for q, a in pairs]
    first = trainer.forward(data, "cross_entropy").result().metrics["loss:sum"]
    for _ in range(40):
        trainer.forward_backward(data, "cross_entropy")
        trainer.optim_step(types.AdamParams(learning_rate=3e-3)).result()
    last = trainer.forward(data, "cross_entropy").result().metrics["loss:sum"]
    assert last < 0.05 * first and last < 0.5
    sampler = trainer.save_weights_and_get_sampling_client().result()
    params = types.SamplingParams(max_tokens=5, temperature=0.0)
    for q, a in pairs:
        seq = sampler.sample(model_input(tok, [{"role": "user", "content": q}]), 1, params).result().sequences[0]
        assert tok.decode(seq.tokens, skip_special_tokens=True) == a
        assert seq.stop_reason == "stop"


def test_seed_stop_and_max_tokens(service):
    sampler = service.create_sampling_client(base_model="local/tiny").result()
    tok = sampler.get_tokenizer()
    prompt = model_input(tok, [{"role": "user", "content": "hello"}])
    p = types.SamplingParams(max_tokens=12, temperature=1.0, seed=7, stop=[])
    a = sampler.sample(prompt, 2, p).result()
    b = sampler.sample(prompt, 2, p).result()
    assert [s.tokens for s in a.sequences] == [s.tokens for s in b.sequences]
    assert a.sequences[0].tokens != a.sequences[1].tokens  # at temperature 1 the two samples differ
    assert sampler.sample(prompt, 2, types.SamplingParams(max_tokens=12, temperature=1.0, seed=8, stop=[])).result() \
        .sequences[0].tokens != a.sequences[0].tokens  # and another seed draws otherwise
    # the samples of neighbouring seeds do not overlap: sample 1 of seed 7 is not sample 0 of seed 8
    e = sampler.sample(prompt, 1, types.SamplingParams(max_tokens=12, temperature=1.0, seed=8, stop=[])).result()
    assert e.sequences[0].tokens != a.sequences[1].tokens
    assert all(len(s.tokens) == 12 and s.stop_reason == "length" for s in a.sequences)
    assert len(a.sequences[0].logprobs) == 12
    stop_tok = a.sequences[0].tokens[3]
    c = sampler.sample(prompt, 1, types.SamplingParams(max_tokens=12, temperature=1.0, seed=7, stop=[stop_tok])).result()
    assert c.sequences[0].tokens[-1] == stop_tok and c.sequences[0].stop_reason == "stop"
    text = tok.decode(a.sequences[0].tokens[:4])
    d = sampler.sample(prompt, 1, types.SamplingParams(max_tokens=12, temperature=1.0, seed=7, stop=[text[-1]])).result()
    assert text[-1] in tok.decode(d.sequences[0].tokens) and len(d.sequences[0].tokens) <= 4


def test_top_k_and_top_p_narrow_the_draw(service):
    """top_k=1, or a top_p below the most likely token's probability, leaves one token to draw:
    hot sampling then gives the greedy answer whatever the seed."""
    sampler = service.create_sampling_client(base_model="local/tiny").result()
    prompt = model_input(sampler.get_tokenizer(), [{"role": "user", "content": "hello"}])
    greedy = sampler.sample(prompt, 1, types.SamplingParams(max_tokens=8, temperature=0.0, stop=[])).result()
    for narrow in ({"top_k": 1}, {"top_p": 1e-6}):
        for seed in (1, 2):
            hot = types.SamplingParams(max_tokens=8, temperature=1.0, seed=seed, stop=[], **narrow)
            assert sampler.sample(prompt, 1, hot).result().sequences[0].tokens == greedy.sequences[0].tokens, narrow
    wide = [sampler.sample(prompt, 1, types.SamplingParams(max_tokens=8, temperature=1.0, seed=s, stop=[]))
            .result().sequences[0].tokens for s in (1, 2)]
    assert greedy.sequences[0].tokens not in wide or wide[0] != wide[1]  # without them the draw is free


def test_save_then_load_gives_identical_logprobs(service):
    trainer = service.create_lora_training_client("local/tiny", seed=5).result()
    tok = trainer.get_tokenizer()
    data = [_datum(tok, "Καλημέρα σε όλους", "el")]
    trainer.forward_backward(data, "cross_entropy")
    trainer.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    before = trainer.forward(data, "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
    state = trainer.save_state("s1").result().path
    restored = service.create_training_client_from_state_with_optimizer(state).result()
    after = restored.forward(data, "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-6)
    sampler_path = trainer.save_weights_for_sampler("final").result().path
    sampler = service.create_sampling_client(model_path=sampler_path).result()
    ids = data[0].model_input.to_ints()
    lp = sampler.compute_logprobs(types.ModelInput.from_ints(ids)).result()
    assert lp[0] is None and len(lp) == len(ids)


def test_sample_returns_the_prompt_logprobs_it_is_asked_for(service):
    """include_prompt_logprobs is not ignored: the same numbers as compute_logprobs, one per prompt
    token (None first, and before the last N with prompt_logprobs_last_n), on sample and sample_async."""
    sampler = service.create_sampling_client(base_model="local/tiny").result()
    prompt = model_input(sampler.get_tokenizer(), [{"role": "user", "content": "Guten Morgen zusammen"}])
    params = types.SamplingParams(max_tokens=2, temperature=0.0)
    expected = sampler.compute_logprobs(prompt).result()
    assert sampler.sample(prompt, 1, params).result().prompt_logprobs is None  # not asked: not given
    got = sampler.sample(prompt, 2, params, include_prompt_logprobs=True).result()
    assert len(got.sequences) == 2 and got.prompt_logprobs[0] is None and len(got.prompt_logprobs) == prompt.length
    np.testing.assert_allclose(got.prompt_logprobs[1:], expected[1:], rtol=0, atol=1e-5)
    tail = asyncio.run(sampler.sample_async(prompt, 1, params, include_prompt_logprobs=True, prompt_logprobs_last_n=3))
    assert tail.prompt_logprobs[:-3] == [None] * (prompt.length - 3)
    np.testing.assert_allclose(tail.prompt_logprobs[-3:], expected[-3:], rtol=0, atol=1e-5)
    last = sampler.compute_logprobs(prompt, prompt_logprobs_last_n=2).result()
    assert last[:-2] == [None] * (prompt.length - 2) and last[-2:] == expected[-2:]
    with pytest.raises(LocalBackendError, match="set include_prompt_logprobs"):
        sampler.sample(prompt, 1, params, prompt_logprobs_last_n=2)
    with pytest.raises(LocalBackendError, match="prompt_logprobs_last_n must be between 1 and"):
        sampler.compute_logprobs(prompt, prompt_logprobs_last_n=prompt.length)


@pytest.mark.parametrize("case", ["topk_prompt_logprobs", "target_prompt_logprobs", "prompt_alt_tokens_k",
                                  "optimizer", "optimizer_from_state", "inflight", "forward_backward_custom",
                                  "save_weights_external", "copy_weights", "create_custom_loss"])
def test_what_the_local_backend_cannot_do_is_refused_not_ignored(service, case):
    from helpers.local.clients import LocalUnsupported

    sampler = service.create_sampling_client(base_model="local/tiny").result()
    prompt = model_input(sampler.get_tokenizer(), [{"role": "user", "content": "hola"}])
    params = types.SamplingParams(max_tokens=1, temperature=0.0)
    calls = {
        "topk_prompt_logprobs": lambda: sampler.sample(prompt, 1, params, include_prompt_logprobs=True,
                                                       topk_prompt_logprobs=3),
        "target_prompt_logprobs": lambda: sampler.sample(prompt, 1, params, True, 0, 0,
                                                         types.TensorData(data=[1], dtype="int64", shape=[1, 1])),
        "prompt_alt_tokens_k": lambda: sampler.sample(prompt, 1, params, prompt_alt_tokens_k=2),
        "optimizer": lambda: service.create_lora_training_client(
            "local/tiny", optimizer=types.DimuonOptimizerConfig()),
        "optimizer_from_state": lambda: service.create_training_client_from_state(
            "local://nowhere", optimizer=types.DimuonOptimizerConfig()),
        "inflight": lambda: service.create_lora_training_client("local/tiny").result()
        .save_weights_and_get_sampling_client(kind="inflight"),
        "forward_backward_custom": lambda: service.create_lora_training_client("local/tiny").result()
        .forward_backward_custom([], lambda data, logprobs: (0.0, {})),
        "save_weights_external": lambda: service.create_lora_training_client("local/tiny").result()
        .save_weights_external("x"),
        "copy_weights": lambda: service.copy_weights("tinker://run/weights/x"),
        "create_custom_loss": lambda: service.create_custom_loss(lambda data, logprobs: (0.0, {}), {}),
    }
    with pytest.raises(NotImplementedError, match="the local backend does not implement .*; run on Tinker") as e:
        calls[case]()
    assert isinstance(e.value, LocalUnsupported) and isinstance(e.value, LocalBackendError)  # one line in the CLI


def test_a_seed_left_out_is_drawn_at_random_and_a_state_without_moments_resets_them(service):
    """As the SDK documents, ``seed=None`` is a random seed: two such runs start apart, two runs of
    one seed alike. A state saved before any step holds no optimiser moments: loading it with
    the optimiser starts the moments afresh, not with the client's own."""
    def weights(client):
        return [p.detach().clone() for p in client._loaded.model.parameters()]

    same = [weights(service.create_lora_training_client("local/tiny", seed=3).result()) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*same, strict=True))
    unseeded = [weights(service.create_lora_training_client("local/tiny").result()) for _ in range(2)]
    assert not all(torch.equal(a, b) for a, b in zip(*unseeded, strict=True))

    fresh = service.create_lora_training_client("local/tiny", seed=0).result()
    state = fresh.save_state("before-any-step").result().path
    trainer = service.create_lora_training_client("local/tiny", seed=0).result()
    tok = trainer.get_tokenizer()
    trainer.forward_backward([_datum(tok, "hallo welt", "de")], "cross_entropy").result()
    trainer.optim_step(types.AdamParams(learning_rate=1e-3)).result()
    assert trainer._optimizer is not None and trainer._optimizer.state
    trainer.load_state_with_optimizer(state).result()
    assert trainer._optimizer is None or not trainer._optimizer.state


def test_get_info_says_what_tinker_says(service):
    """``training_client.get_info()``, as the SDK's docstring shows it used: the model's name,
    the run's id and the LoRA rank."""
    trainer = service.create_lora_training_client("local/tiny", rank=8, seed=0).result()
    info = trainer.get_info()
    assert isinstance(info, types.GetInfoResponse)
    assert (info.model_data.model_name, info.model_id, info.lora_rank) == ("local/tiny", trainer.run_id, 8)


def test_training_clients_from_state_take_the_sdks_parameters(service):
    """Called as on Tinker, by name or by position: base_model (the checkpoint's own), user_metadata,
    weights_access_token and the default optimizer are accepted; another base model is refused."""
    trainer = service.create_lora_training_client("local/tiny", 8, 0, True, True, True, {"run": "a"},
                                                  types.AdamOptimizerConfig()).result()
    state = trainer.save_state("s").result().path
    for create in (service.create_training_client_from_state, service.create_training_client_from_state_with_optimizer):
        assert create(state, "local/tiny", {"run": "b"}, None).result().get_base_model() == "local/tiny"
        assert create(state, base_model=None, user_metadata={"run": "c"}, weights_access_token="t").result()
        with pytest.raises(LocalBackendError, match="cannot load it as local/tiny-small"):
            create(state, "local/tiny-small").result()
    assert service.create_training_client_from_state(state, optimizer=types.AdamOptimizerConfig()).result()


def test_many_concurrent_samples_are_batched(service):
    sampler = service.create_sampling_client(base_model="local/tiny").result()
    tok = sampler.get_tokenizer()
    params = types.SamplingParams(max_tokens=3, temperature=0.0)

    async def many():
        prompts = [model_input(tok, [{"role": "user", "content": f"query number {i}"}]) for i in range(40)]
        return await asyncio.gather(*[sampler.sample_async(p, 1, params) for p in prompts])

    before = sampler._engine.batches_run
    results = asyncio.run(many())
    assert len(results) == 40 and all(len(r.sequences[0].tokens) <= 3 for r in results)
    assert sampler._engine.batches_run - before <= 4  # 40 requests, a handful of forward batches
    # batching (left padding, one cache for all) changes no answer: each alone gives the same tokens
    for i in (0, 7, 39):
        alone = sampler.sample(model_input(tok, [{"role": "user", "content": f"query number {i}"}]), 1, params).result()
        assert alone.sequences[0].tokens == results[i].sequences[0].tokens


@pytest.mark.parametrize("case", ["lengths", "loss", "context", "max_tokens", "model", "rank", "logprobs_context",
                                  "optim_none", "optim_both", "optim_other", "taken_name", "vocab", "empty",
                                  "teacher_vocab", "datum_vocab", "topk", "no_data"])
def test_clear_errors(service, case):
    trainer = service.create_lora_training_client("local/tiny", seed=0).result()
    tok = trainer.get_tokenizer()
    if case == "lengths":
        bad = types.Datum(model_input=types.ModelInput.from_ints([1, 2, 3]),
                          loss_fn_inputs={"target_tokens": [2, 3], "weights": [1.0, 1.0]})
        with pytest.raises(LocalBackendError, match="lengths disagree"):
            trainer.forward_backward([bad], "cross_entropy").result()
    elif case == "no_data":  # at the call, as the SDK raises it, not at .result()
        for call in (trainer.forward_backward, trainer.forward):
            with pytest.raises(ValueError, match="no data provided"):
                call([], "cross_entropy")
    elif case == "loss":
        with pytest.raises(LocalBackendError, match="supports: cross_entropy"):
            trainer.forward_backward([_datum(tok, "hallo welt", "de")], "ppo").result()
    elif case == "context":
        sampler = trainer.save_weights_and_get_sampling_client().result()
        with pytest.raises(LocalBackendError, match="does not fit the context"):
            sampler.sample(types.ModelInput.from_ints([5] * 600), 1, types.SamplingParams(max_tokens=2))
    elif case == "max_tokens":
        sampler = trainer.save_weights_and_get_sampling_client().result()
        with pytest.raises(LocalBackendError, match="max_tokens must be at least 1"):
            sampler.sample(types.ModelInput.from_ints([5, 6]), 1, types.SamplingParams(max_tokens=0))
    elif case == "model":
        with pytest.raises(LocalBackendError, match="known models: local/tiny"):
            service.create_lora_training_client("gpt-17").result()
    elif case == "rank":
        with pytest.raises(LocalBackendError, match="rank must be"):
            service.create_lora_training_client("local/tiny", rank=0).result()
    elif case == "logprobs_context":  # on Tinker a one-token sampling request: refused past the context too
        sampler = trainer.save_weights_and_get_sampling_client().result()
        with pytest.raises(LocalBackendError, match="prompt of 600 tokens .*does not fit the context"):
            sampler.compute_logprobs(types.ModelInput.from_ints([5] * 600))
    elif case in ("vocab", "empty", "teacher_vocab", "topk"):  # refused at the call, not by torch in the batch
        sampler = (service.create_sampling_client(base_model=TEACHER_MODEL).result() if case == "teacher_vocab"
                   else trainer.save_weights_and_get_sampling_client().result())
        vocab = len(sampler.get_tokenizer())
        prompt, says = {"vocab": ([5, vocab + 7, 6], rf"prompt of local/tiny: token 1 is id {vocab + 7}, outside "
                                                     rf"the model's vocabulary \(ids 0 to {vocab - 1}\)"),
                        "teacher_vocab": ([-1], "prompt of local/policy-teacher: token 0 is id -1, outside"),
                        "empty": ([], "prompt is empty"), "topk": ([5, 6], "topk_sample_logprobs must be 0 or more")}[case]
        with pytest.raises(LocalBackendError, match=says):
            sampler.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=2),
                           topk_sample_logprobs=-1 if case == "topk" else 0)
        if case == "vocab":
            with pytest.raises(LocalBackendError, match=says):
                sampler.compute_logprobs(types.ModelInput.from_ints(prompt))
    elif case == "datum_vocab":
        vocab = len(tok)
        good = _datum(tok, "hallo welt", "de")
        bad = types.Datum(model_input=types.ModelInput.from_ints([1, 2, 3]),
                          loss_fn_inputs={"target_tokens": [2, 3, vocab], "weights": [0.0, 1.0, 1.0]})
        with pytest.raises(LocalBackendError, match=rf"datum 1: target_tokens: token 2 is id {vocab}, outside"):
            trainer.forward_backward([good, bad], "cross_entropy").result()
    elif case.startswith("optim"):  # as the SDK checks them: no silent default learning rate
        trainer.forward_backward([_datum(tok, "hallo welt", "de")], "cross_entropy").result()
        before = [p.detach().clone() for p in trainer._loaded.model.parameters()]
        if case == "optim_none":
            with pytest.raises(TypeError, match="Expected AdamParams"):
                trainer.optim_step()
        elif case == "optim_both":
            with pytest.raises(ValueError, match="not both"):
                trainer.optim_step(types.AdamParams(learning_rate=1e-3), adam_params=types.AdamParams())
        else:
            from helpers.local.clients import LocalUnsupported

            with pytest.raises(LocalUnsupported, match="DimuonParams"):
                trainer.optim_step(types.DimuonParams(learning_rate=1e-3))
        assert all(torch.equal(a, b) for a, b in zip(before, trainer._loaded.model.parameters(), strict=True))
    elif case == "taken_name":  # Tinker keeps a run's checkpoint names: saving one again is refused
        first = trainer.save_state("a").result().path
        with pytest.raises(LocalBackendError, match="checkpoint name 'a' is already saved in this run"):
            trainer.save_state("a").result()
        assert trainer.save_state("a", overwrite=True).result().path == first
        trainer.save_weights_for_sampler("s").result()
        with pytest.raises(LocalBackendError, match="checkpoint name 's' is already saved in this run"):
            trainer.save_weights_for_sampler("s").result()


def test_a_sample_cancelled_while_queued_leaves_the_others_of_its_batch_alone(service, monkeypatch):
    """Cancelling one request (asyncio.wait_for timing out, say) drops it; the requests batched
    with it still get their answers (they all failed with InvalidStateError)."""
    from helpers.local.clients import TorchSampler

    sampler = service.create_sampling_client(base_model="local/tiny").result()
    tok = sampler.get_tokenizer()
    params = types.SamplingParams(max_tokens=3, temperature=0.0)
    busy, go = threading.Event(), threading.Event()
    generate = TorchSampler._generate

    def held(self, chunk):  # the first batch waits, so the next requests queue up behind it
        busy.set()
        assert go.wait(60)
        return generate(self, chunk)

    monkeypatch.setattr(TorchSampler, "_generate", held)
    first = sampler.sample(model_input(tok, [{"role": "user", "content": "first"}]), 1, params)
    assert busy.wait(60)
    futures = [sampler.sample(model_input(tok, [{"role": "user", "content": f"query {i}"}]), 1, params) for i in range(6)]
    assert futures[1].future().cancel() and futures[4].future().cancel()
    go.set()
    for i in (0, 2, 3, 5):
        assert len(futures[i].result(timeout=60).sequences[0].tokens) <= 3
    assert futures[1].future().cancelled() and futures[4].future().cancelled() and first.result(timeout=60).sequences


def test_a_request_that_fails_in_its_batch_fails_alone(service, monkeypatch):
    """A batch that fails is run again one request at a time: the request the model cannot take
    gets the error, the ones batched with it their answers."""
    from helpers.local.clients import TorchSampler

    sampler = service.create_sampling_client(base_model="local/tiny").result()
    tok = sampler.get_tokenizer()
    poison = model_input(tok, [{"role": "user", "content": "poison"}]).to_ints()
    generate = TorchSampler._generate

    def failing(self, chunk):
        if any(job.prompt == poison for _, job, _ in chunk):
            raise RuntimeError("the model cannot take this one")
        return generate(self, chunk)

    monkeypatch.setattr(TorchSampler, "_generate", failing)
    params = types.SamplingParams(max_tokens=3, temperature=0.0)
    texts = ["query 0", "poison", "query 2", "query 3"]

    async def together():
        return await asyncio.gather(*[sampler.sample_async(model_input(tok, [{"role": "user", "content": t}]), 1, params)
                                      for t in texts], return_exceptions=True)

    results = asyncio.run(together())
    assert isinstance(results[1], RuntimeError) and "cannot take" in str(results[1])
    assert all(isinstance(results[i], types.SampleResponse) for i in (0, 2, 3))


def test_futures_work_inside_a_running_event_loop(service):
    async def inside():
        trainer = await service.create_lora_training_client("local/tiny", seed=0)
        tok = trainer.get_tokenizer()
        out = await trainer.forward([_datum(tok, "hello there friend", "en")], "cross_entropy")
        return out.metrics["loss:sum"]

    assert asyncio.run(inside()) > 0


def test_connect_chooses_and_refuses(monkeypatch):
    from helpers.backend import BackendError, choose_backend

    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    monkeypatch.delenv("PD_BACKEND", raising=False)
    assert choose_backend() == ("local", "no TINKER_API_KEY in the environment")
    monkeypatch.setenv("TINKER_API_KEY", "")  # as unset, and the reason says which (a blank one stops: test_connect)
    assert choose_backend() == ("local", "TINKER_API_KEY is empty")
    monkeypatch.setenv("TINKER_API_KEY", "tml-fake")
    assert choose_backend()[0] == "tinker"
    monkeypatch.setenv("PD_BACKEND", "local")
    assert connect().backend == "local"
    monkeypatch.setenv("PD_BACKEND", " Local\n")  # read as PD_QUICK is: case and spaces do not matter
    assert choose_backend() == ("local", "PD_BACKEND is set")
    monkeypatch.setenv("PD_BACKEND", "")  # empty is unset: the key decides
    assert choose_backend()[0] == "tinker"
    monkeypatch.setenv("PD_BACKEND", "local")
    monkeypatch.delenv("TINKER_API_KEY")
    # the way offline that works: PD_BACKEND does not override a backend the caller named
    with pytest.raises(BackendError, match=r"needs an API key: .*offline backend with --backend local \(connect\('local'\)"):
        connect("tinker")
    monkeypatch.setenv("PD_BACKEND", "tinker")
    with pytest.raises(BackendError, match="needs an API key: .*offline backend with PD_BACKEND=local$"):
        connect()


@pytest.fixture
def no_proxy(monkeypatch):
    """No HTTP(S) proxy in the environment: the reachability check then connects directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_unreachable_tinker_server_fails_fast(monkeypatch, no_proxy):

    from helpers.backend import BackendError

    monkeypatch.setenv("TINKER_API_KEY", "tml-fake-key-for-test")
    started = time.monotonic()
    with pytest.raises(BackendError, match="127.0.0.1:9") as err:
        connect("tinker", base_url="http://127.0.0.1:9/api")
    assert time.monotonic() - started < 30
    assert "tml-fake-key-for-test" not in str(err.value)


def test_a_server_url_with_credentials_is_never_shown_with_them(monkeypatch, no_proxy):
    """A gateway's TINKER_BASE_URL may carry a user and token (https://user:token@host): the
    one line that names the server shows the host, not the secret; so does every redacted text."""
    from helpers.backend import BackendError, redact

    monkeypatch.setenv("TINKER_API_KEY", "tml-fake-key-for-test")
    with pytest.raises(BackendError, match=r"http://\*\*\*@127\.0\.0\.1:9/api") as err:
        connect("tinker", base_url="http://me:gateway-token@127.0.0.1:9/api")
    assert "gateway-token" not in str(err.value) and "me:" not in str(err.value)
    assert redact("POST https://me:gateway-token@gw.example/v1 failed") == "POST https://***@gw.example/v1 failed"


def test_context_length_is_what_the_server_states_per_model():
    service = connect("local")
    assert context_length(service, "local/tiny") == 512 == service.get_server_capabilities().supported_models[0].max_context_length
    assert context_length(service, TEACHER_MODEL) is None  # the stand-in reads any length
    assert context_length(service, "no/such-model") is None
    assert context_length(object(), "local/tiny") is None  # not a client connect() made: nothing is asked


def test_a_server_that_did_not_answer_is_asked_for_the_context_again(monkeypatch):
    """No answer (a timeout, a lost connection) is not taken for "no limit" for the rest of the
    process: the next call asks again, and an answer is then kept."""
    from types import SimpleNamespace

    import helpers.backend as backend

    answers = [TimeoutError("no answer within 20 s"),
               types.GetServerCapabilitiesResponse(supported_models=[
                   types.SupportedModel(model_name="some/model", max_context_length=32768)])]
    asked = []

    def capabilities(url, timeout=None):
        asked.append(url)
        answer = answers[min(len(asked), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(backend, "_capabilities", capabilities)
    monkeypatch.setattr(backend, "_CONTEXTS", {})
    service = SimpleNamespace(backend="tinker", server_url="http://tinker.invalid")
    assert context_length(service, "some/model") is None  # the server was silent: unknown, for now
    assert context_length(service, "some/model") == 32768  # asked again, and it answered
    assert context_length(service, "some/model") == 32768 and len(asked) == 2  # the answer is kept


def test_a_compatible_server_without_the_capabilities_route_still_connects(monkeypatch, no_proxy):
    """connect() checks the key by asking for the server's capabilities; a Tinker-compatible
    server that answers that with a 404 says nothing against the key, so connect() goes on
    (a 401 stops it: test_tinker_sdk.py::test_a_refused_key_stops_with_one_line_naming_the_setting)."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked = []

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            asked.append(self.path)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = json.dumps({"error": "no such route"}).encode()
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("TINKER_API_KEY", "tml-fake-key-for-test")
        client = connect("tinker", base_url=f"http://127.0.0.1:{server.server_address[1]}")
        assert client.backend == "tinker" and asked  # it asked, and took the 404 for no verdict
        # nor does the model's context come from it: unknown, so nothing is held back, and asked once
        before = len(asked)
        assert context_length(client, "local/tiny") is None and context_length(client, "other") is None
        assert len(asked) - before >= 1
        after = len(asked)
        assert context_length(client, "local/tiny") is None and len(asked) == after
    finally:
        server.shutdown()
        server.server_close()


def test_reachability_check_leaves_proxied_connections_to_the_client(monkeypatch):
    """Behind a proxy a direct TCP connection says nothing: the check steps aside, unless NO_PROXY names the host."""
    from helpers.backend import BackendError, check_reachable

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    check_reachable("http://192.0.2.1:9/api", timeout=1)  # would time out without the proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(BackendError, match="127.0.0.1:9"):
        check_reachable("http://127.0.0.1:9/api", timeout=5)


def test_reachability_check_is_bounded_even_when_the_name_lookup_hangs(monkeypatch, no_proxy):
    import socket

    from helpers.backend import BackendError, check_reachable

    def hanging_lookup(*args, **kwargs):
        time.sleep(5)
        raise socket.gaierror("lookup gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"tinker\.example.*no connection within 0\.5 s, name lookup included"):
        check_reachable("https://tinker.example/api", timeout=0.5)
    assert time.monotonic() - started < 4


def test_a_silent_first_address_leaves_time_for_the_next(monkeypatch, no_proxy):
    """A host's first address that never answers (a full listen backlog drops the SYN) must
    not use up the whole timeout: the next address, which answers, is still tried."""
    import socket

    from helpers.backend import check_reachable

    silent, alive = socket.socket(), socket.socket()
    for server in (silent, alive):
        server.bind(("127.0.0.1", 0))
        server.listen(0)
    fillers = []
    for _ in range(3):  # fill the silent server's backlog; its next SYN goes unanswered
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(silent.getsockname())
        fillers.append(filler)
    addresses = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", s.getsockname()) for s in (silent, alive)]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: addresses)
    try:
        check_reachable("http://tinker.example/api", timeout=3)  # no error: the second address answered
    finally:
        for sock in (silent, alive, *fillers):
            sock.close()


@pytest.mark.filterwarnings("error::FutureWarning")  # no deprecation reaches a learner from our calls
def _hugging_face_folder(folder):
    """The tiny model and its tokenizer saved as a Hugging Face model folder."""
    from helpers.local.clients import load_model

    tiny = load_model("local/tiny")
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)


def test_hugging_face_folder_trains_with_lora(tmp_path, monkeypatch):
    """A local folder holding a Hugging Face causal LM loads, and trains through peft's LoRA;
    named by a relative path, its checkpoints load from any working directory."""
    _hugging_face_folder(tmp_path / "hf")
    svc = LocalServiceClient(store=tmp_path / "store")
    monkeypatch.chdir(tmp_path)
    trainer = svc.create_lora_training_client("hf", rank=4, seed=0).result()
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    tok = trainer.get_tokenizer()
    d = [_datum(tok, "hallo welt wie geht es", "de")]
    before = trainer.forward(d, "cross_entropy").result().metrics["loss:sum"]
    for _ in range(10):
        trainer.forward_backward(d, "cross_entropy")
        trainer.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    assert trainer.forward(d, "cross_entropy").result().metrics["loss:sum"] < before
    path = trainer.save_weights_for_sampler("lora").result().path
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    sampler = svc.create_sampling_client(model_path=path).result()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the KV cache goes under the name this transformers uses
        assert sampler.sample(model_input(tok, [{"role": "user", "content": "hallo"}]), 1,
                              types.SamplingParams(max_tokens=2, temperature=0)).result().sequences


@pytest.mark.parametrize("damage, says", [
    ("truncated", r"meta\.json:2: malformed JSON"),
    ("no_base_model", r"meta\.json: no \"base_model\""),
    ("other_rank", r"checkpoint does not fit model .*: weight .* is \(\d+, \d+\) there, \(\d+, \d+\) here"),
])
def test_a_damaged_checkpoint_is_named_not_a_torch_traceback(tmp_path, damage, says):
    import json

    _hugging_face_folder(tmp_path / "hf")
    svc = LocalServiceClient(store=tmp_path / "store")
    trainer = svc.create_lora_training_client(str(tmp_path / "hf"), rank=4, seed=0).result()
    path = trainer.save_state("s").result().path
    meta_file = tmp_path / "store" / path.split("/store/", 1)[1] / "meta.json"
    meta = json.loads(meta_file.read_text())
    if damage == "truncated":
        meta_file.write_text(meta_file.read_text()[:20])
    elif damage == "no_base_model":
        meta_file.write_text(json.dumps({k: v for k, v in meta.items() if k != "base_model"}))
    else:
        meta_file.write_text(json.dumps({**meta, "rank": 8}))
    with pytest.raises(LocalBackendError, match=says):
        svc.create_training_client_from_state(path).result()


EXIT_WITH_WORK_QUEUED = """
from tinker import types
from helpers import connect
from helpers.backend import context_length
from helpers.prompt import student_messages
from helpers.render import model_input
client = connect("local").create_sampling_client(base_model="local/tiny").result()
tok = client.get_tokenizer()
params = types.SamplingParams(max_tokens=64, temperature=1.0)
futures = [client.sample(model_input(tok, student_messages("hello world " * 60 + str(i))), 1, params) for i in range(300)]
futures[0].result()
print("exiting with sampling work queued")
"""


def test_sampler_threads_stop_at_exit_and_queued_jobs_fail(tmp_path):
    """A daemon thread inside a torch call while Python finalises aborts the process (exit code
    134, "terminate called without an active exception"; about one exit in three before). The
    exit hook stops every sampler between decoding steps and fails what is still queued."""
    import subprocess
    import sys

    from helpers.local import clients
    from helpers.prompt import student_messages

    client = connect("local", store=tmp_path / "w").create_sampling_client(base_model="local/tiny").result()
    tok = client.get_tokenizer()
    params = types.SamplingParams(max_tokens=64, temperature=1.0)
    futures = [client.sample(model_input(tok, student_messages("hello world " * 60 + str(i))), 1, params) for i in range(300)]
    futures[0].result()
    try:
        clients._stop_samplers()
        assert not [t for t in threading.enumerate() if t.name == "local-sampler"]
        outcomes = [f.future().exception(timeout=5) for f in futures]
        assert all(e is None or isinstance(e, clients.SamplerStopped) for e in outcomes)
        assert any(isinstance(e, clients.SamplerStopped) for e in outcomes)  # it did not run the queue to the end
        assert isinstance(client.sample(model_input(tok, student_messages("late")), 1, params).future()
                          .exception(timeout=5), clients.SamplerStopped)
    finally:
        clients._EXITING.clear()
    assert client.sample(model_input(tok, student_messages("after")), 1, params).result(timeout=60).sequences
    proc = subprocess.run([sys.executable, "-c", EXIT_WITH_WORK_QUEUED], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "exiting with sampling work queued" in proc.stdout, proc.stderr[-2000:]


def test_a_job_submitted_as_an_idle_worker_leaves_is_still_served():
    """The worker ends after IDLE_SECONDS without work and the next submit starts a new one. A job
    queued just as the old worker gave up used to be left in the queue with no one to serve it,
    and its caller waited for ever. Here the idle time is a fraction of a millisecond, the worker
    takes 2 ms to give up (so the window is wide), and jobs come at random moments around it."""
    import queue
    import random

    from helpers.local import clients

    class SlowToGiveUp(queue.Queue):
        def get(self, block=True, timeout=None):
            try:
                return super().get(block, timeout)
            except queue.Empty:
                time.sleep(0.002)
                raise

    class Instant(clients.TorchSampler):
        IDLE_SECONDS = 0.0002

        def run_jobs(self, jobs):  # no model: the race is in the queue, not in sampling
            return [len(job.prompt) for job in jobs]

    sampler = Instant(loaded=None)
    sampler._queue = SlowToGiveUp()
    params = types.SamplingParams(max_tokens=1)
    rng = random.Random(0)
    workers = set()
    for i in range(400):
        future = sampler.submit(clients._SampleJob(prompt=[0] * (i % 7 + 1), num_samples=1, params=params, topk=0))
        workers.add(sampler._thread)
        assert future.result(timeout=5) == i % 7 + 1, f"job {i} was never served"
        time.sleep(rng.uniform(0, 0.004))
    assert len(workers - {None}) > 50  # workers did come and go: the race was run many times
