"""Chat rendering: the one place where a conversation becomes tokens.

A training example and a sampling prompt must be rendered the same way, or the
student learns a format it never sees when it is asked (the most common way
distillation fails without an error). So both go through the model's own chat
template here, and :func:`render_example` checks, for any tokenizer, that the
tokens of the generation prompt are exactly the prefix of the training tokens.

Weights: 0 on the prompt, 1 on the answer and on its end-of-turn token, so the
student learns to stop. Thinking-capable templates (Qwen3) are rendered with
thinking disabled.

Example
-------
>>> from helpers.local.model import load_tokenizer
>>> tok = load_tokenizer()
>>> ex = render_example(tok, [{"role": "user", "content": "Hallo zusammen"},
...                           {"role": "assistant", "content": "de"}])
>>> tok.decode(ex.completion_tokens)
'de<|im_end|>'
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from tinker import types


class RenderMismatchError(ValueError):
    """The chat template renders a conversation differently for training and for sampling."""


def _template(tokenizer, messages, add_generation_prompt: bool) -> str:
    kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    try:  # Qwen3-style templates: answer directly, no <think> block
        return tokenizer.apply_chat_template(messages, enable_thinking=False, **kwargs)
    except TypeError:
        return tokenizer.apply_chat_template(messages, **kwargs)


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


_PREFIX_CACHE: dict[tuple[int, str], list[int]] = {}  # (tokenizer, its name and size + prefix) -> tokens
# What is learnt once per tokenizer: id(tokenizer) -> (a weak reference to it, the value). The
# reference tells a later tokenizer that reuses a freed one's id from the one it was learnt of.
_PREFIX_OK: dict[int, tuple[weakref.ref, bool]] = {}  # whether the shortcut matched a full encode
_END_OF_TURN: dict[int, tuple[weakref.ref, int | None]] = {}  # the token the template ends a turn with
_UNKNOWN = object()


def _recall(cache: dict, tokenizer):
    """What ``cache`` holds for this very tokenizer, or ``_UNKNOWN``."""
    entry = cache.get(id(tokenizer))
    return entry[1] if entry is not None and entry[0]() is tokenizer else _UNKNOWN


def _remember(cache: dict, tokenizer, value) -> None:
    """Keep ``value`` for ``tokenizer`` (not for one that takes no weak reference), and forget
    the tokenizers that are gone."""
    try:
        cache[id(tokenizer)] = (weakref.ref(tokenizer), value)
    except TypeError:
        pass
    for dead in [k for k, (r, _) in list(cache.items()) if r() is None]:
        cache.pop(dead, None)


def _prefix_ok(tokenizer) -> bool | None:
    """Whether the shortcut was checked for this very tokenizer and matched; None: not checked."""
    checked = _recall(_PREFIX_OK, tokenizer)
    return None if checked is _UNKNOWN else checked


def _encode_with_cached_prefix(tokenizer, text: str) -> list[int]:
    """Encode ``text``, reusing the tokens of its first turn (the long system prompt).

    A special token such as ``<|im_end|>`` is a hard boundary for the tokenizer, so the
    text up to the first one encodes the same alone as in context. Labelling thousands of
    queries with a 3,000-token prompt then tokenises the prompt once, not thousands of
    times. The first use with a tokenizer checks the shortcut against a full encode.
    """
    marker = tokenizer.convert_ids_to_tokens(end_of_turn_id(tokenizer))
    cut = text.find(marker) if isinstance(marker, str) else -1
    checked = _prefix_ok(tokenizer)
    if len(text) < 2000 or cut < 0 or checked is False:
        return _encode(tokenizer, text)
    try:
        weakref.ref(tokenizer)
    except TypeError:  # a tokenizer that takes no weak reference: no shortcut, the full encode
        return _encode(tokenizer, text)
    cut += len(marker)
    key = (id(tokenizer), f"{getattr(tokenizer, 'name_or_path', '')}:{len(tokenizer)}:{text[:cut]}")
    prefix = _PREFIX_CACHE.get(key)  # one read: another thread may clear the cache meanwhile
    if prefix is None:
        if len(_PREFIX_CACHE) > 64:
            _PREFIX_CACHE.clear()
        prefix = _PREFIX_CACHE[key] = _encode(tokenizer, text[:cut])
    tokens = prefix + _encode(tokenizer, text[cut:])
    if checked is None:
        ok = tokens == _encode(tokenizer, text)
        _remember(_PREFIX_OK, tokenizer, ok)
        if not ok:
            return _encode(tokenizer, text)
    return tokens


def _end_of_turn_from_template(tokenizer) -> int | None:
    """The first special token the chat template writes after an assistant's answer, or None.

    Read from the template itself, so that any family's token is found: ``<|im_end|>``
    (ChatML, Qwen), ``<|eot_id|>`` (Llama 3), ``<end_of_turn>`` (Gemma), ``<|end|>`` (Phi-3,
    gpt-oss), ``</s>``. Special tokens before the answer (a channel or header) are passed over.
    """
    answer = "de"
    try:
        messages = conversation("Hallo zusammen", answer)
        prompt = _encode(tokenizer, _template(tokenizer, messages[:-1], add_generation_prompt=True))
        full = _encode(tokenizer, _template(tokenizer, messages, add_generation_prompt=False))
        special = set(tokenizer.all_special_ids) | {
            i for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items() if getattr(t, "special", False)}
        rest = full[len(prompt):] if full[: len(prompt)] == prompt else None
        # the answer's end: the fewest tokens of the rest whose text holds it
        end = next((k for k in range(len(rest) + 1) if answer in tokenizer.decode(rest[:k], skip_special_tokens=True)),
                   None) if rest is not None else None
    except Exception:  # no chat template, or a tokenizer that cannot do this: the named tokens decide
        return None
    return None if end is None else next((int(t) for t in rest[end:] if t in special), None)


def end_of_turn_id(tokenizer) -> int:
    """The token that ends an assistant turn: the one the chat template writes after the answer
    (``<|im_end|>`` for ChatML models), else the first known name the vocabulary has, else end of text."""
    found = _recall(_END_OF_TURN, tokenizer)
    if found is _UNKNOWN:  # read from the template once per tokenizer (each time for one without weak references)
        found = _end_of_turn_from_template(tokenizer)
        _remember(_END_OF_TURN, tokenizer, found)
    if found is not None:
        return found
    for name in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(name)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None and tid >= 0:
            return tid
    return tokenizer.eos_token_id


def stop_tokens(tokenizer) -> list[int]:
    """Tokens that end an answer: the end of turn, and end of text if the tokenizer's differs."""
    stops = [end_of_turn_id(tokenizer)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stops:
        stops.append(tokenizer.eos_token_id)
    return stops


def sampling_params(tokenizer, max_tokens: int, temperature: float = 0.0, **extra) -> types.SamplingParams:
    """``SamplingParams`` that stop at the end of the assistant's turn, whatever the server's default.

    The stop tokens are given, not left implicit: a server's own end-of-sequence set need
    not hold the chat template's end-of-turn token, and an answer that runs past it into a
    made-up next turn no longer parses as a bare label.

    >>> from helpers.local.model import load_tokenizer
    >>> tok = load_tokenizer()
    >>> [tok.convert_ids_to_tokens(t) for t in sampling_params(tok, 8).stop]
    ['<|im_end|>']
    """
    return types.SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=stop_tokens(tokenizer), **extra)


def decode_answer(tokenizer, tokens) -> str:
    """The text of a sampled answer: its tokens up to the first stop token, special tokens dropped.

    >>> from helpers.local.model import load_tokenizer
    >>> tok = load_tokenizer()
    >>> decode_answer(tok, tok.encode("de<|im_end|>\\nuser\\nmore", add_special_tokens=False))
    'de'
    """
    tokens, stops = list(tokens), set(stop_tokens(tokenizer))
    end = next((i for i, t in enumerate(tokens) if t in stops), len(tokens))
    return tokenizer.decode(tokens[:end], skip_special_tokens=True)


def prompt_tokens(tokenizer, messages: list[dict]) -> list[int]:
    """Tokens of the generation prompt for ``messages`` (which end with the user's turn)."""
    return _encode_with_cached_prefix(tokenizer, _template(tokenizer, messages, add_generation_prompt=True))


def model_input(tokenizer, messages: list[dict]) -> types.ModelInput:
    """The generation prompt as a ``tinker.types.ModelInput``, ready for ``sample``."""
    return types.ModelInput.from_ints(prompt_tokens(tokenizer, messages))


@dataclass
class RenderedExample:
    """A conversation as tokens: the prompt part and the completion the student learns."""

    prompt_tokens: list[int]
    completion_tokens: list[int]

    @property
    def tokens(self) -> list[int]:
        return self.prompt_tokens + self.completion_tokens

    @property
    def weights(self) -> list[float]:
        """Per-token loss weights of the recipe: 0 on the prompt, 1 on the answer."""
        return self.token_weights(0.0)

    def token_weights(self, prompt_weight: float = 0.0) -> list[float]:
        """Per-token loss weights with ``prompt_weight`` on the prompt's tokens."""
        return [prompt_weight] * len(self.prompt_tokens) + [1.0] * len(self.completion_tokens)

    def to_datum(self, weight: float = 1.0, prompt_weight: float = 0.0) -> types.Datum:
        """Shift by one for next-token prediction: input ``tokens[:-1]``, targets ``tokens[1:]``.

        ``weight`` scales the whole example (soft labels use it). ``prompt_weight`` puts that
        weight on the prompt's tokens too (0, the recipe's setting, trains on the answer only;
        a small value also trains the model to read the query's language, see ``TrainConfig``).
        """
        tokens, weights = self.tokens, self.token_weights(prompt_weight)
        return types.Datum(
            model_input=types.ModelInput.from_ints(tokens[:-1]),
            loss_fn_inputs={
                "target_tokens": types.TensorData(data=tokens[1:], dtype="int64", shape=[len(tokens) - 1]),
                "weights": types.TensorData(data=[w * weight for w in weights[1:]], dtype="float32", shape=[len(tokens) - 1]),
            },
        )


def render_example(tokenizer, messages: list[dict]) -> RenderedExample:
    """Render a conversation ending in an assistant turn, checking the prefix property.

    Raises :class:`RenderMismatchError` when the template's rendering of the whole
    conversation does not begin with its generation prompt for the conversation
    minus the answer: training on it would teach a format sampling never shows.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("a training conversation must end with an assistant turn")
    prompt = prompt_tokens(tokenizer, messages[:-1])
    full = _encode(tokenizer, _template(tokenizer, messages, add_generation_prompt=False))
    if full[: len(prompt)] != prompt:
        at = next((i for i, (a, b) in enumerate(zip(full, prompt, strict=False)) if a != b), min(len(full), len(prompt)))
        raise RenderMismatchError(
            f"chat template mismatch at token {at}: sampling prompt continues "
            f"{tokenizer.decode(prompt[at:at + 8])!r} but the training text has "
            f"{tokenizer.decode(full[at:at + 8])!r}"
        )
    rest = full[len(prompt) :]
    eot = end_of_turn_id(tokenizer)
    if eot not in rest:
        raise RenderMismatchError("the rendered answer has no end-of-turn token")
    return RenderedExample(prompt, rest[: rest.index(eot) + 1])


def conversation(query: str, answer: str) -> list[dict]:
    """The student's training conversation: the bare query, the teacher's label."""
    return [{"role": "user", "content": query}, {"role": "assistant", "content": answer}]
