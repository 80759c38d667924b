"""Rendering (the train/sample prefix guard) and the training loop."""

import json
import math
import re
from pathlib import Path

import pytest

from helpers import connect
from helpers.dataio import DataError, read_conversations, read_queries
from helpers.local.model import load_tokenizer
from helpers.render import (
    RenderMismatchError,
    conversation,
    model_input,
    prompt_tokens,
    render_example,
    sampling_params,
)
from helpers.train import (
    TrainConfig,
    epoch_batches,
    learning_rate_at,
    read_checkpoint_info,
    split,
    train,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def test_generation_prompt_is_prefix_of_training_tokens_for_every_course_example():
    tok = load_tokenizer()
    for name in ("queries.jsonl", "dev_gold.jsonl", "test_gold.jsonl"):
        for row in read_queries(DATA / name):
            ex = render_example(tok, conversation(row["text"], "ot"))
            prompt = prompt_tokens(tok, [{"role": "user", "content": row["text"]}])
            assert ex.tokens[: len(prompt)] == prompt
            assert tok.decode(ex.completion_tokens) == "ot<|im_end|>"


def test_thinking_templates_are_rendered_with_thinking_off_and_others_as_they_are():
    """Qwen3-style templates take ``enable_thinking``: rendered with it off, the model answers
    at once instead of thinking past ``max_tokens``; a template without the option still renders."""
    from helpers import render

    class Thinking:  # thinks unless told not to, as Qwen3's template does by default
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, enable_thinking=True):
            return "turns" + ("<think>" if enable_thinking else "")

    class Plain:  # a template without the option: passing it raises TypeError
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            return "turns"

    messages = [{"role": "user", "content": "hola"}]
    assert render._template(Thinking(), messages, add_generation_prompt=True) == "turns"
    assert render._template(Plain(), messages, add_generation_prompt=True) == "turns"


def test_mismatched_template_is_caught():
    class Drifting:
        """A template whose generation prompt opens an empty think block that training text lacks
        (what Qwen3-style templates do when history is rendered differently)."""

        def __init__(self, tok):
            self.tok = tok
            self.unk_token_id = tok.unk_token_id
            self.eos_token_id = tok.eos_token_id

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **kw):
            text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
            return text + "<think></think>" if add_generation_prompt else text

        def __getattr__(self, name):
            return getattr(self.tok, name)

    with pytest.raises(RenderMismatchError, match="mismatch"):
        render_example(Drifting(load_tokenizer()), conversation("hola amigos", "es"))


_FAMILIES = {  # chat templates of other model families, in miniature: (template, special tokens, bos, eos, end of turn)
    "llama3": ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
               "{{ m['content'] }}<|eot_id|>{% endfor %}"
               "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
               ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"),
    "gemma": ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else "
              "m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
              "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
              ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<eos>", "<end_of_turn>"),
    # an end of turn that is neither a known name nor the end of text: read from the template
    "phi3": ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
             ["<s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"], "<s>", "<|endoftext|>", "<|end|>"),
    # special tokens between the prompt and the answer (a channel) are not its end
    "channels": ("{% for m in messages %}<|start|>{{ m['role'] }}{% if m['role'] == 'assistant' %}<|channel|>final"
                 "{% endif %}<|message|>{{ m['content'] }}<|finish|>{% endfor %}"
                 "{% if add_generation_prompt %}<|start|>assistant{% endif %}",
                 ["<|start|>", "<|channel|>", "<|message|>", "<|finish|>", "<|return|>"], None, "<|return|>",
                 "<|finish|>"),
}


def _family_tokenizer(template, specials, bos, eos):
    """A byte-level tokenizer with the family's special tokens and chat template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", *specials, *sorted(pre_tokenizers.ByteLevel.alphabet())])}
    backend = Tokenizer(models.BPE(vocab, [], unk_token="[UNK]"))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", bos_token=bos, eos_token=eos,
                                  additional_special_tokens=[s for s in specials if s not in (bos, eos)])
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_other_families_end_the_answer_and_stop_sampling_at_their_own_end_of_turn(family):
    """Llama 3, Gemma, Phi-3 and channel-style templates: the student learns the answer and the
    token its template ends a turn with, sampling stops there, and the answer is read up to it."""
    from helpers.render import decode_answer, stop_tokens

    template, specials, bos, eos, end = _FAMILIES[family]
    tok = _family_tokenizer(template, specials, bos, eos)
    end_id = tok.convert_tokens_to_ids(end)
    for query, label in [("hola amigos", "es"), ("Guten Morgen", "de"), ("12345", "ot")]:
        ex = render_example(tok, conversation(query, label))
        assert ex.prompt_tokens == prompt_tokens(tok, [{"role": "user", "content": query}])
        assert ex.completion_tokens[-1] == end_id and tok.decode(ex.completion_tokens, skip_special_tokens=True).endswith(label)
    assert stop_tokens(tok) == [end_id, tok.eos_token_id] and sampling_params(tok, 4).stop == [end_id, tok.eos_token_id]
    sampled = tok.encode("es", add_special_tokens=False) + [end_id] + tok.encode("<|start|>user more", add_special_tokens=False)
    assert decode_answer(tok, sampled) == "es"


def test_weights_and_shift():
    tok = load_tokenizer()
    datum = render_example(tok, conversation("hola amigos", "es")).to_datum()
    w = datum.loss_fn_inputs["weights"].to_numpy()
    assert w.sum() == 2 and list(w[-2:]) == [1.0, 1.0]  # the label and the end-of-turn token
    assert datum.model_input.length == len(w)
    # shifted by one: the input is every token but the last, each target the token after it
    example = render_example(tok, conversation("hola amigos", "es"))
    tokens = example.prompt_tokens + example.completion_tokens
    assert datum.model_input.to_ints() == tokens[:-1]
    assert list(datum.loss_fn_inputs["target_tokens"].to_numpy()) == tokens[1:]


def test_schedules_split_and_batches():
    cfg = TrainConfig(learning_rate=1.0, warmup_steps=0, lr_schedule="linear")
    assert learning_rate_at(0, 10, cfg) == 1.0 and learning_rate_at(5, 10, cfg) == 0.5
    cfg = TrainConfig(learning_rate=1.0, warmup_steps=0, lr_schedule="cosine")
    assert learning_rate_at(5, 10, cfg) == pytest.approx(0.5)
    # steps run 0 to 9: the last one still learns, a little (as linear's last, at 0.1)
    last = learning_rate_at(9, 10, cfg)
    assert last == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi))) and last > 0
    # warm-up (the local default has 10 steps), by hand: lr (step + 1) / 4, then linear over the 6 left
    warm = TrainConfig(learning_rate=1.0, warmup_steps=4, lr_schedule="linear")
    assert [learning_rate_at(s, 10, warm) for s in range(10)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0, 5 / 6, 4 / 6, 0.5, 2 / 6, 1 / 6])
    flat = TrainConfig(learning_rate=1.0, warmup_steps=0, lr_schedule="constant")
    assert {learning_rate_at(s, 10, flat) for s in range(10)} == {1.0}
    a, b = split(list(range(100)), 0.2, seed=1)
    assert len(b) == 20 and sorted(a + b) == list(range(100)) and split(list(range(100)), 0.2, 1) == (a, b)
    # one query asked several times stays on one side: validation never scores what was trained on
    asked = [(f"query {i % 10}", "en") for i in range(100)]
    fit, held = split(asked, 0.2, seed=1, key=lambda row: row[0])
    assert len(held) == 20 and not {q for q, _ in fit} & {q for q, _ in held}
    # never more than its share: a query too big for what is left of it stays in training
    assert split([("same", "de")] * 20, 0.05, seed=0, key=lambda row: row[0]) == ([("same", "de")] * 20, [])
    uneven = [(f"query {i % 3}", "en") for i in range(30)] + [(f"alone {i}", "en") for i in range(10)]
    fit, held = split(uneven, 0.1, seed=2, key=lambda row: row[0])
    assert len(held) <= 4 and len(fit) + len(held) == 40 and not {q for q, _ in fit} & {q for q, _ in held}
    # distinct queries (the course's data: generate keeps each text once) split as before
    assert split([(i, "en") for i in range(100)], 0.2, 1, key=lambda row: row[0]) == (
        [(i, "en") for i in a], [(i, "en") for i in b])
    import random

    batches = epoch_batches([5] * 50 + [50] * 50, 10, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(100))
    lengths = [5] * 50 + [50] * 50
    mixed = [b for b in batches if len({lengths[i] for i in b}) > 1]
    assert len(mixed) <= 2  # at most one batch per window straddles short and long examples


@pytest.mark.parametrize("setting,message", [
    ({"learning_rate": 0}, "learning_rate must be a finite number > 0"),
    ({"learning_rate": float("inf")}, "learning_rate must be a finite number > 0"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0"),
    ({"seed": -5}, "seed must be a whole number from 0 to 4294967295"),
    ({"seed": 10**20}, "seed must be a whole number from 0 to 4294967295"),  # torch's seed would overflow
    ({"warmup_steps": -1}, "warmup_steps must be a whole number >= 0"),
    ({"rank": 0}, "rank must be a whole number >= 1"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"prompt_weight": 1.5}, "prompt_weight must be in"),
    # the wrong type is named as a setting too, not a TypeError from deep in the loop
    ({"epochs": 1.5}, "epochs must be a whole number >= 1, got 1.5"),
    ({"learning_rate": "3e-3"}, "learning_rate must be a finite number > 0, got '3e-3'"),
    ({"batch_size": True}, "batch_size must be a whole number >= 1, got True"),
    ({"beta2": 1.0}, r"beta2 must be in \[0, 1\)"),
    ({"eps": 0}, "eps must be a finite number > 0"),
    ({"grad_clip_norm": -1}, "grad_clip_norm must be a finite number >= 0"),
    ({"base_model": ""}, "base_model must be a model name"),
])
def test_bad_settings(setting, message):
    with pytest.raises(DataError, match=message):
        TrainConfig(**setting).validate()


def test_prompt_weight_trains_on_the_query_but_reports_the_answer_loss():
    ex = render_example(load_tokenizer(), conversation("Guten Morgen zusammen", "de"))
    plain = ex.to_datum().loss_fn_inputs["weights"].to_numpy()
    mixed = ex.to_datum(0.5, prompt_weight=0.2).loss_fn_inputs["weights"].to_numpy()
    n_prompt = len(ex.prompt_tokens) - 1  # targets are shifted by one
    assert plain[:n_prompt].sum() == 0 and list(plain[n_prompt:]) == [1.0] * len(ex.completion_tokens)
    assert mixed[:n_prompt] == pytest.approx([0.1] * n_prompt) and list(mixed[n_prompt:]) == [0.5] * len(ex.completion_tokens)
    # The first step's loss is measured before any update: per answer token, the same either way.
    cfg = dict(epochs=1, batch_size=8, val_fraction=0, warmup_steps=0)
    a = train(connect("local"), ROWS[:8], TrainConfig(**cfg, prompt_weight=0.0))
    b = train(connect("local"), ROWS[:8], TrainConfig(**cfg, prompt_weight=0.5))
    assert a.history[0]["loss"] == pytest.approx(b.history[0]["loss"], rel=1e-4)
    assert a.history[0]["loss"] > 1.0  # an untrained model: it is a real loss, not zero
    # a row's "weight" (soft labels) scales its loss: every row at 0.5, half the first loss
    half = train(connect("local"), [{**r, "weight": 0.5} for r in ROWS[:8]], TrainConfig(**cfg, prompt_weight=0.0))
    assert half.history[0]["loss"] == pytest.approx(0.5 * a.history[0]["loss"], rel=1e-4)


def test_settings_from_a_numpy_grid_train_and_are_saved_as_python_numbers(tmp_path):
    """``for bs in np.array([8, 16])``: numpy numbers pass the checks, and the run writes its
    progress and checkpoint as JSON (it used to stop at the first write: int64 is not JSON)."""
    import numpy as np

    config = TrainConfig(epochs=np.int64(1), batch_size=np.int64(8), val_fraction=np.float32(0.0),
                         learning_rate=np.float32(1e-3), warmup_steps=0)
    result = train(connect("local", store=tmp_path / "w"), ROWS[:8], config, out_dir=tmp_path / "run")
    assert len(result.history) == 1
    saved = json.loads((tmp_path / "run" / "checkpoint.json").read_text())["config"]
    assert saved["batch_size"] == 8 and type(config.batch_size) is int and type(config.learning_rate) is float


def test_without_a_config_a_tinker_service_gets_the_tinker_recipe():
    """``train(connect(), rows)`` with a key set: the recipe's model and rank on Tinker, as
    ``generate`` picks its teacher by backend (it used to ask Tinker for local/tiny)."""
    asked = []

    class Tinkerish:  # a service client that is not the local backend's, stopped at its first call
        def create_lora_training_client(self, base_model, rank=32, seed=None, **kwargs):
            asked.append((base_model, rank))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(Tinkerish(), ROWS[:8])
    assert asked == [("Qwen/Qwen3-30B-A3B", 32)]
    # a training client given without a service keeps the local default, as before
    client = connect("local").create_lora_training_client("local/tiny", seed=0).result()
    assert train(None, ROWS[:8], training_client=client).config["base_model"] == "local/tiny"


class _SplitSensitive:
    """The local tokenizer, except that every encode call ends with one more token: the
    prompt-prefix shortcut (two calls) then differs from a full encode (one), as it would for
    a tokenizer that merges across the end of the system turn."""

    def __init__(self, tok):
        self._tok = tok

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __len__(self):
        return len(self._tok)

    def encode(self, text, add_special_tokens=False):
        return [*self._tok.encode(text, add_special_tokens=add_special_tokens), 7]


def test_the_prompt_shortcut_is_checked_for_each_tokenizer_even_one_that_reuses_an_id():
    """The long prompt's tokens are reused only for a tokenizer on which the shortcut was
    checked; a new tokenizer that Python placed at a freed one's address (same id) is checked
    afresh, not trusted on the old one's word."""
    import weakref

    from helpers import render
    from helpers.prompt import DEFAULT_PROMPT, teacher_messages

    tok = load_tokenizer()
    messages = teacher_messages("hola", DEFAULT_PROMPT)
    render.prompt_tokens(tok, messages)
    assert render._prefix_ok(tok) is True
    other = _SplitSensitive(tok)
    render._PREFIX_OK[id(other)] = (weakref.ref(tok), True)  # as if it had the id of the checked tokenizer
    full = other.encode(render._template(other, messages, add_generation_prompt=True))
    assert render.prompt_tokens(other, messages) == full
    assert render._prefix_ok(other) is False


def test_bad_data():
    svc = connect("local")
    with pytest.raises(DataError, match="empty data set"):
        train(svc, [])
    with pytest.raises(DataError, match="not one of the 13 labels"):
        train(svc, [{"messages": conversation("hola", "spanish")}])
    with pytest.raises(DataError, match=r"^setting: val_fraction=0.6 leaves none of the 1 examples for training"):
        train(svc, [{"messages": conversation("hola", "es")}], TrainConfig(val_fraction=0.6))
    with pytest.raises(DataError, match="example 1: needs one user turn followed by one assistant turn, got user$"):
        train(svc, [{"messages": [{"role": "user", "content": "hola"}]}])
    for weight in (None, "high", -3, float("nan")):  # a negative weight would be gradient ascent on the row
        with pytest.raises(DataError, match=r"example 1: \"weight\" must be a finite number >= 0"):
            train(svc, [{"messages": conversation("hola", "es"), "weight": weight}])


def test_a_bad_weight_in_a_file_names_its_line(tmp_path):
    path = tmp_path / "chat.jsonl"
    rows = [{"messages": conversation("hola", "es"), "weight": 0.5}, {"messages": conversation("hallo", "de"), "weight": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"{path}:2: \"weight\" must be a finite number >= 0, got None"):
        read_conversations(path)


def user(text):
    return {"role": "user", "content": text}


def answer(label):
    return {"role": "assistant", "content": label}


@pytest.mark.parametrize("messages, problem", [
    # the answer would be trained as the answer to the question after it
    ([user("Guten Morgen"), answer("de"), user("Bonjour tout le monde")],
     "needs one user turn followed by one assistant turn, got user, assistant, user"),
    # the first exchange would be dropped without a word
    ([user("Guten Morgen"), answer("de"), user("Bonjour"), answer("fr")],
     "needs one user turn followed by one assistant turn, got user, assistant, user, assistant"),
    ([answer("de"), user("Guten Morgen")], "needs one user turn followed by one assistant turn, got assistant, user"),
    ([{"role": "system", "content": "You label languages."}, user("Guten Morgen"), answer("de")],
     "has a system turn: the student is trained without a prompt"),
    ([], "needs one user turn followed by one assistant turn, got no turns"),
])
def test_a_row_that_is_not_one_question_and_its_answer_is_refused_by_file_and_by_train(tmp_path, messages, problem):
    """Training takes the user turn and the answer; anything else in a row would be dropped or mispaired silently."""
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": conversation("hola", "es")}) + "\n\n" + json.dumps({"messages": messages}) + "\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: {re.escape(problem)}"):
        read_conversations(path)
    with pytest.raises(DataError, match=rf"^training data: example 2: {re.escape(problem)}") as caught:
        train(connect("local"), [{"messages": conversation("hola", "es")}, {"messages": messages}])
    assert caught.value.example == 2


def test_a_file_that_loads_also_trains(tmp_path):
    """What read_conversations accepts, train accepts too: a note without a role, an answer with a newline."""
    path = tmp_path / "chat.jsonl"
    row = {"messages": [{"content": "a note"}, {"role": "user", "content": "hola"}, {"role": "assistant", "content": "es\n"}]}
    path.write_text(json.dumps(row) + "\n")
    rows = read_conversations(path)
    result = train(connect("local"), rows, TrainConfig(epochs=1, batch_size=1, val_fraction=0, warmup_steps=0))
    assert len(result.history) == 1


ROWS = [{"messages": conversation(t, a)} for t, a in [
    ("Guten Morgen zusammen", "de"), ("Buenos días a todos", "es"), ("Bonjour tout le monde", "fr"),
    ("Good morning everyone", "en"), ("Καλημέρα σε όλους", "el"), ("Доброе утро всем", "ru"),
    ("Günaydın herkese", "tr"), ("Chào buổi sáng mọi người", "vi"),
] * 3]


def test_training_resumes_to_the_same_weights(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.delenv("TQDM_DISABLE", raising=False)

    cfg = TrainConfig(epochs=2, batch_size=4, val_fraction=0, save_every=3, warmup_steps=0)
    full = train(connect("local", store=tmp_path / "a" / "w"), ROWS, cfg, out_dir=tmp_path / "a")
    # an interrupted run: stop after the first checkpoint by failing the 5th step's callback
    seen = []

    def stop(info):
        seen.append(info)
        if info.get("step") == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(connect("local", store=tmp_path / "b" / "w"), ROWS, cfg, out_dir=tmp_path / "b", callbacks=[stop])
    progress = json.loads((tmp_path / "b" / "progress.json").read_text())
    assert progress["step"] == 3
    capsys.readouterr()
    resumed = train(connect("local", store=tmp_path / "b" / "w"), ROWS, cfg, out_dir=tmp_path / "b", progress=True)
    assert (full.first_step, resumed.first_step) == (0, 3)
    bar = capsys.readouterr().err  # the steps' bar begins where the run resumed and ends at the last step
    assert "training:  25%" in bar and "3/12" in bar and "12/12" in bar and "loss=" in bar, bar[-500:]
    assert not re.search(r"(?<!\d)0/12", bar)  # not from step 0
    assert len(resumed.history) == len(full.history) == 12
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history], rel=1e-4)
    wa = torch.load(Path(json.loads((tmp_path / "a" / "checkpoint.json").read_text())["sampler_path"][8:]) / "weights.pt")
    wb = torch.load(Path(json.loads((tmp_path / "b" / "checkpoint.json").read_text())["sampler_path"][8:]) / "weights.pt")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k


def test_training_learns_and_validates(recorded_prompts):
    """The loss falls, and each validation samples the held-out rows' queries (without the
    prompt), and scores the answers: the last one is recomputed here on the same weights."""
    from helpers.render import model_input
    from helpers.train import _check_rows, accuracy_by_sampling

    asked, recording = recorded_prompts

    class Recording:  # the training client, whose validation samplers record the prompts they get
        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            return getattr(self._client, name)

        def save_weights_and_get_sampling_client(self, *args, **kwargs):
            return recording(self._client.save_weights_and_get_sampling_client(*args, **kwargs).result())

    cfg = TrainConfig(epochs=8, batch_size=8, val_fraction=0.25, warmup_steps=0, learning_rate=3e-3, prompt_weight=0.0)
    service, seen = connect("local"), []
    client = service.create_lora_training_client(cfg.base_model, rank=cfg.rank, seed=cfg.seed).result()
    result = train(service, ROWS, cfg, callbacks=[seen.append], training_client=Recording(client))
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 3
    assert {"step", "validation"} == {i["kind"] for i in seen}
    _, held_out = split(_check_rows(ROWS), cfg.val_fraction, cfg.seed, key=lambda ex: ex[0])
    tok = client.get_tokenizer()
    wanted = [model_input(tok, [{"role": "user", "content": q}]).to_ints() for q, _, _ in held_out[: cfg.val_samples]]
    assert asked[-len(wanted):] == wanted and len(asked) == len(wanted) * len(result.validation)
    expected = accuracy_by_sampling(result.sampling_client, tok, held_out[: cfg.val_samples])
    assert result.validation[-1]["step"] == len(result.history)
    assert result.validation[-1]["val_accuracy"] == expected


def test_validation_without_samples_keeps_the_loss_and_writes_strict_json(tmp_path):
    """val_samples=0 skips the sampling (the cost of it on Tinker) but keeps the validation loss;
    the accuracy is None, not NaN, which a strict JSON reader refuses in progress.json."""
    from helpers.plots import LiveLossPlot

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))

    cfg = TrainConfig(epochs=1, batch_size=4, val_fraction=0.25, val_samples=0, warmup_steps=0)
    plot = LiveLossPlot(live=False)
    result = train(connect("local", store=tmp_path / "w"), ROWS, cfg, out_dir=tmp_path / "run", callbacks=[plot])
    last = result.validation[-1]
    assert last["val_accuracy"] is None and last["val_loss"] > 0
    assert strict((tmp_path / "run" / "progress.json").read_text())["validation"][-1]["val_accuracy"] is None
    assert strict((tmp_path / "run" / "checkpoint.json").read_text())["validation"]["val_accuracy"] is None
    assert plot.figure().axes[1].get_title() == "validation accuracy (not sampled)"


def test_backend_defaults_follow_the_recipe_on_tinker_and_the_measurements_locally():
    recipe = TrainConfig.for_backend("tinker")
    assert (recipe.base_model, recipe.rank, recipe.learning_rate, recipe.lr_schedule, recipe.epochs,
            recipe.batch_size, recipe.prompt_weight) == ("Qwen/Qwen3-30B-A3B", 32, 1e-4, "linear", 4, 128, 0.0)
    assert TrainConfig.for_backend("tinker", quick=True).epochs == 1
    local, quick = TrainConfig.for_backend("local"), TrainConfig.for_backend("local", quick=True)
    assert (local.base_model, local.epochs, local.batch_size, local.prompt_weight) == ("local/tiny", 3, 32, 0.5)
    assert (quick.batch_size, quick.epochs) == (16, 4)
    assert TrainConfig.for_backend("local", quick=True, epochs=2).epochs == 2  # overrides win


def test_a_row_too_long_for_the_local_model_stops_the_run_before_it_starts(tmp_path):
    rows = ROWS[:5] + [{"messages": conversation("sehr lange Rede " * 400, "de")}] + ROWS[5:]
    with pytest.raises(DataError, match=r"example 6: \d+ tokens, more than local/tiny's context of 512"):
        train(connect("local"), rows, TrainConfig(epochs=1, batch_size=4, val_fraction=0, warmup_steps=0),
              out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "progress.json").exists()  # no step was taken


def test_rows_that_just_fit_the_context_are_trained_and_validated(tmp_path, query_of_prompt_length):
    """A row whose prompt leaves less than the 8 tokens validation lets an answer take is
    trained on, and validation asks for a shorter answer: a server refuses a prompt and
    max_tokens that do not fit together, and so does the local client."""
    tokenizer = load_tokenizer()
    close = query_of_prompt_length(508)  # 508 + "de" + end of turn = 510 tokens of 512; 508 + 8 would not fit
    assert render_example(tokenizer, conversation(close, "de")).to_datum().model_input.length <= 512
    rows = [{"messages": conversation(close, "de")}] * 4 + ROWS[:4]
    result = train(connect("local"), rows, TrainConfig(epochs=1, batch_size=4, val_fraction=0.5, warmup_steps=0,
                                                       val_samples=4, seed=0), out_dir=tmp_path / "run")
    assert result.validation and 0 <= result.validation[-1]["val_accuracy"] <= 1


def test_a_finished_run_asked_again_reuses_its_saved_student(tmp_path):
    """The same data and settings into the same folder again: nothing is trained or saved anew,
    so checkpoint.json (and every evaluation fingerprinted on it) stays as it was, and no
    training client is opened (on Tinker that would load the weights and optimizer onto a new
    run): the saved student is sampled as it is."""
    service = connect("local", store=tmp_path / "w")
    cfg = TrainConfig(epochs=1, batch_size=8, val_fraction=0, warmup_steps=0)
    first = train(service, ROWS, cfg, out_dir=tmp_path / "run")
    written = (tmp_path / "run" / "checkpoint.json").read_text()
    saved = sorted(tmp_path.rglob("meta.json"))

    class SamplingOnly:
        def __getattr__(self, name):
            assert "training_client" not in name, f"a finished run asked again opened a trainer ({name})"
            return getattr(service, name)

    again = train(SamplingOnly(), ROWS, cfg, out_dir=tmp_path / "run")
    assert again.sampler_path == first.sampler_path and (tmp_path / "run" / "checkpoint.json").read_text() == written
    assert again.history == first.history and sorted(tmp_path.rglob("meta.json")) == saved  # no weights saved again
    assert again.first_step == len(again.history)  # every step was done before this call
    tok = load_tokenizer()
    prompt = model_input(tok, [{"role": "user", "content": "Guten Morgen"}])
    answers = [r.sampling_client.sample(prompt, 1, sampling_params(tok, 8)).result().sequences[0].tokens
               for r in (first, again)]
    assert answers[0] == answers[1]  # the same student


def test_a_huge_number_of_epochs_starts_at_once_making_one_epochs_batches_at_a_time(monkeypatch):
    """--epochs 100000000 is a long run, not minutes of silence while every epoch's batches are
    made up front (and memory fills): the batches of an epoch are made when it starts."""
    import helpers.train as train_module

    made = []

    def counted(lengths, batch_size, rng):
        made.append(1)
        if len(made) > 10:
            raise AssertionError("batches made for epochs the run has not reached")
        return epoch_batches(lengths, batch_size, rng)

    class Enough(Exception):
        pass

    def stop_after_step_6(info):
        if info["kind"] == "step" and info["step"] >= 6:
            raise Enough

    monkeypatch.setattr(train_module, "epoch_batches", counted)
    with pytest.raises(Enough):
        train(connect("local"), ROWS[:8], TrainConfig(epochs=100_000_000, batch_size=4, val_fraction=0, warmup_steps=0),
              callbacks=[stop_after_step_6])
    assert len(made) in (3, 4)  # two steps an epoch: epochs 0 to 2 reached, the next perhaps submitted


def test_a_student_folder_moved_or_copied_samples_its_own_weights(tmp_path):
    """Locally the weights live in the student's folder (the command line's store is DIR/weights):
    a copy answers from the copy's weights, and a moved folder still answers, where the absolute
    local:// path used to point at the original (or at nothing)."""
    import shutil

    from helpers.evaluate import predict
    from helpers.train import read_checkpoint_info

    first = tmp_path / "student"
    config = TrainConfig(epochs=1, batch_size=4, val_fraction=0, warmup_steps=0)
    train(connect("local", store=first / "weights"), ROWS[:8], config, out_dir=first)
    service = connect("local")
    before = predict(f"student:{first}", ["Guten Morgen zusammen"], service, progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    path = read_checkpoint_info(copy)["sampler_path"]
    assert path.startswith(f"local://{copy.resolve()}/weights/"), path
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert not first.exists()
    after = predict(f"student:{moved}", ["Guten Morgen zusammen"], service, progress=False)
    assert after[0].raw == before[0].raw and read_checkpoint_info(moved)["sampler_path"].startswith(f"local://{moved.resolve()}/")
    # the same run asked again in the moved folder is found finished there: no step is trained again
    again = train(connect("local", store=moved / "weights"), ROWS[:8], config, out_dir=moved)
    assert again.first_step == again.history[-1]["step"] and again.checkpoints[-1].startswith(f"local://{moved.resolve()}/")
    assert predict(f"student:{moved}", ["Guten Morgen zusammen"], service, progress=False)[0].raw == before[0].raw


def test_a_run_shorter_than_its_warmup_says_its_peak_learning_rate_is_never_reached(capsys):
    result = train(connect("local"), ROWS[:8], TrainConfig(epochs=1, batch_size=4, val_fraction=0, warmup_steps=10))
    assert [step["learning_rate"] for step in result.history] == pytest.approx([3e-4, 6e-4])
    assert "train: warmup_steps=10 is not fewer than the run's 2 steps, so the learning rate rises to 0.0006 and " \
           "never reaches learning_rate=0.003" in capsys.readouterr().err
    train(connect("local"), ROWS[:8], TrainConfig(epochs=1, batch_size=4, val_fraction=0, warmup_steps=1))
    assert "warmup_steps" not in capsys.readouterr().err


def test_a_checkpoint_json_that_cannot_be_read_is_named_in_one_line(tmp_path):
    from helpers.train import read_checkpoint_info

    (tmp_path / "checkpoint.json").write_text('{\n "sampler_path":\n')
    with pytest.raises(DataError, match=r"checkpoint\.json:3: malformed JSON \(Expecting value\)$"):
        read_checkpoint_info(tmp_path)
    (tmp_path / "checkpoint.json").unlink()
    (tmp_path / "checkpoint.json").mkdir()
    with pytest.raises(DataError, match=r"checkpoint\.json: cannot read \(Is a directory\)$"):
        read_checkpoint_info(tmp_path)


def test_an_interrupted_training_says_where_the_same_call_resumes(tmp_path):
    """Ctrl-C or a notebook's stop button: the KeyboardInterrupt's traceback ends with what the
    next call does, and the same call does it."""
    config = TrainConfig(epochs=2, batch_size=4, val_fraction=0, save_every=2, warmup_steps=0)

    def stop_at(step):
        def callback(info):
            if info["kind"] == "step" and info["step"] == step:
                raise KeyboardInterrupt
        return callback

    service = connect("local", store=tmp_path / "weights")
    with pytest.raises(KeyboardInterrupt) as info:
        train(service, ROWS, config, out_dir=tmp_path / "s", callbacks=[stop_at(5)])
    total = 2 * -(-len(ROWS) // 4)
    assert info.value.__notes__ == [f"training interrupted after step 5 of {total}: run the same call again; "
                                    "it resumes from its last checkpoint, step 4"]
    # the next command of the README, on the unfinished folder, says so and what to do
    with pytest.raises(DataError, match=r"checkpoint.json: no such file: the training in .*s has not finished \(saved "
                                        r"at step 4\); run the same `python -m helpers train` command again"):
        read_checkpoint_info(tmp_path / "s")
    assert train(service, ROWS, config, out_dir=tmp_path / "s").first_step == 4
    given = service.create_lora_training_client("local/tiny", seed=0).result()  # trained as it is: no resuming
    with pytest.raises(KeyboardInterrupt) as info:
        train(service, ROWS, config, out_dir=tmp_path / "t", training_client=given, callbacks=[stop_at(5)])
    assert info.value.__notes__[-1].endswith("run the same call again; it starts again, as it was given a "
                                             "training_client; without training_client it resumes from its last "
                                             "checkpoint, step 4")
    assert train(service, ROWS, config, out_dir=tmp_path / "t").first_step == 4
    with pytest.raises(KeyboardInterrupt) as info:
        train(service, ROWS, config, callbacks=[stop_at(3)])  # no folder, so no checkpoint
    assert info.value.__notes__[-1].endswith("there is no checkpoint to resume from yet, so it starts again")
