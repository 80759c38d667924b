"""Learn the tiny model's byte-level BPE tokenizer from the query pool.

    python scripts/build_tokenizer.py   # writes helpers/local/tokenizer.json

Only data/queries.jsonl is read (never the gold sets), so the evaluation texts
stay unseen. The result is deterministic for the same input.
"""

import json
from pathlib import Path

from helpers.local.model import TOKENIZER_FILE, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    texts = [json.loads(line)["text"] for line in (ROOT / "data" / "queries.jsonl").open(encoding="utf-8")]
    raw = train_tokenizer(texts, vocab_size=2048)
    raw.save(str(TOKENIZER_FILE))
    print(f"wrote {TOKENIZER_FILE} ({raw.get_vocab_size()} tokens)")


if __name__ == "__main__":
    main()
