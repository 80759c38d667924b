"""The offline backend's default model: a tiny byte-level causal LM built from a config.

Nothing is downloaded. The tokenizer is a byte-level BPE (GPT-2 style: every
byte is a token, plus merges learned from the course's query pool by
``scripts/build_tokenizer.py``), wrapped as a real ``PreTrainedTokenizerFast``
with a ChatML chat template, so ``apply_chat_template`` behaves as it does for
Qwen models on Tinker. The model is a ``transformers`` Llama with a few layers
and about a million weights.

What is trained: the tiny model starts from random weights, so LoRA on it would
have nothing to adapt. Locally *all* weights are trained, and the ``rank``
argument of ``create_lora_training_client`` is recorded but not used. A local
path to a real Hugging Face causal LM is different: it is wrapped with LoRA
adapters of that rank through ``peft``, as Tinker does.

Example
-------
>>> tok = load_tokenizer()
>>> ids = tok.apply_chat_template([{"role": "user", "content": "hallo"}],
...                               add_generation_prompt=True, tokenize=False)
>>> ids.endswith("<|im_start|>assistant\\n")
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

TOKENIZER_FILE = Path(__file__).with_name("tokenizer.json")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

# ChatML, the format of the Qwen models the course uses on Tinker.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyConfig:
    """Size of the tiny student. Defaults: the size that did best in under three minutes on 2
    cores (README, Benchmarks: offline it reaches the accuracy the course aims for at the
    default seed, not at every seed, and not the agreement)."""

    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 384
    max_context: int = 512  # tokens; the longest course query is well under 300
    arch: str = "llama"  # "llama" (RoPE, SwiGLU) or "gpt2" (learned positions)
    dropout: float = 0.0  # a few thousand examples overfit fast; dropout helps them generalise
    seed: int = 0


# The local model registry: name -> config. "local/tiny" is the default student.
TINY_MODELS: dict[str, TinyConfig] = {
    "local/tiny": TinyConfig(),
    "local/tiny-small": TinyConfig(hidden_size=64, num_heads=2, intermediate_size=192),
    # Between the two: with data/src/reserve's larger pool it scores as local/tiny does there, in
    # three quarters of the time (README, Benchmarks, "What more data buys").
    "local/tiny-96": TinyConfig(hidden_size=96, num_heads=4, intermediate_size=288),
    "local/tiny-large": TinyConfig(hidden_size=192, num_layers=4, num_heads=6, intermediate_size=576),
}


@lru_cache(maxsize=1)
def load_tokenizer():
    """The tiny model's tokenizer: byte-level BPE with a ChatML template.

    Reads ``tokenizer.json`` shipped beside this module; without it (before
    ``scripts/build_tokenizer.py`` has run) it falls back to plain bytes, which
    works the same, only with longer sequences.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if TOKENIZER_FILE.exists():
        raw = Tokenizer.from_file(str(TOKENIZER_FILE))
    else:
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
        raw = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        raw.add_special_tokens(SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.name_or_path = "local/tiny"
    return tok


def train_tokenizer(texts, vocab_size: int = 2048):
    """Learn byte-level BPE merges from ``texts`` (deterministic for the same input)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=3,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer=trainer)
    return raw


def build_model(config: TinyConfig, vocab_size: int):
    """A randomly initialised Llama-style causal LM of the given size (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer()
    if config.arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        hf_config = GPT2Config(
            vocab_size=vocab_size, n_positions=config.max_context, n_embd=config.hidden_size,
            n_layer=config.num_layers, n_head=config.num_heads, n_inner=config.intermediate_size,
            resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = GPT2LMHeadModel(hf_config)
        model.config.tiny_config = asdict(config)
        return model
    hf_config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_context,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attention_dropout=config.dropout,
        attn_implementation="sdpa",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(hf_config)
    model.config.tiny_config = asdict(config)
    return model
