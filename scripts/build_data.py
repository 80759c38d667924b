"""Build the course's data files from the hand-written sources in data/src/.

    python scripts/build_data.py          # writes data/*.jsonl and data/README.md
    python scripts/build_data.py --check  # exit 1 if the committed files differ
    python scripts/build_data.py --with-reserve --pool-out PATH
                                          # a larger query pool, for data-volume studies

Sources (all written for this project):
  data/src/natural/<label>.txt   natural sentences in the twelve languages
  data/src/natural_pool/<label>.txt  more of them, for the query pool only
  data/src/other/<iso>.txt       sentences in twenty languages outside the label set
  data/src/hard/*.jsonl          hand-written hard cases with labels and kinds
  data/src/short_pool.jsonl, data/src/extra_pool/*.jsonl
                                 more short, code and mixed inputs, for the pool only
  data/src/reserve/natural/<label>.txt, data/src/reserve/other/<iso>.txt
                                 6,115 more sentences, left out of the course's pool
                                 (see "What more data buys" in the README);
                                 --with-reserve adds them to the pool it writes to --pool-out

Every row gets a deterministic split (pool, dev or test) from a hash of its text,
so the three files are disjoint and rebuilding gives the same bytes. Hard cases
are also made by deterministic augmentation: a written sentence with a link,
an e-mail, a handle, a hashtag, emoji or numbers added keeps its label; the
same sentence as a code comment keeps its label; strings of numbers, links and
symbols alone are `ot`. Augmented gold rows come only from gold sentences.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SRC = DATA / "src"
LABELS = ("ar", "de", "el", "en", "es", "fr", "hi", "ru", "tr", "ur", "vi", "zh", "ot")

# How many rows of each group go to the gold sets (the rest is the query pool).
NATURAL_SPLIT = {"test": 20, "dev": 16}
OTHER_SPLIT = {"test": 3, "dev": 2}
HARD_SPLIT = {"test": 0.2, "dev": 0.15}


def normalise(text: str) -> str:
    """Text as compared for overlap: NFKC, lower case, letters and digits only."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\W_]+", " ", text).strip()


def _key(text: str, salt: str = "") -> str:
    return hashlib.sha256((salt + normalise(text)).encode()).hexdigest()


def _split_counts(rows: list[dict], counts: dict[str, int]) -> dict[str, list[dict]]:
    ordered = sorted(rows, key=lambda r: _key(r["text"], "split"))
    out, start = {}, 0
    for split in ("test", "dev"):
        out[split] = ordered[start : start + counts[split]]
        start += counts[split]
    out["pool"] = ordered[start:]
    return out


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------ augmentation

DOMAINS = ["example.com", "news-site.org", "shop.example.net", "blog.example.io", "tickets.example.de"]
SLUGS = ["article/2291", "p/8812?ref=share", "event/summer-fest", "help/faq", "watch?v=Xk29fQ"]
HANDLES = ["@maria_88", "@dev_team", "@kemal.y", "@lina", "@city_news"]
TAGS = ["#travel", "#monday", "#news", "#foodie", "#tbt", "#2024goals"]
EMOJI = ["😂", "🎉", "👍", "❤️", "🙏", "🔥", "😊", "☀️", "🚆", "📚"]
NUMBERS = ["12.03.2024", "14:30", "19,99 €", "$1,250", "+49 30 1234567", "3.5 km", "25%", "2025-07-01", "No. 42"]


def augment(sentence: str, label: str, rng: random.Random) -> list[dict]:
    """Noisy and code-wrapped variants of one sentence, each keeping its label."""
    s = sentence
    noise = [
        ("edge:noise", f"{s} https://www.{rng.choice(DOMAINS)}/{rng.choice(SLUGS)}"),
        ("edge:noise", f"{rng.choice(HANDLES)} {s} {rng.choice(TAGS)}"),
        ("edge:noise", f"{s} {rng.choice(EMOJI)}{rng.choice(EMOJI)} {rng.choice(NUMBERS)}"),
        ("edge:noise", f"{rng.choice(NUMBERS)} – {s} ({rng.choice(['info', 'contact', 'mail'])}@{rng.choice(DOMAINS)})"),
    ]
    code = [
        ("edge:code", f"# {s}\nresult = compute(items, limit=10)\nprint(result)"),
        ("edge:code", f"// {s}\nconst total = items.reduce((a, b) => a + b, 0);"),
        ("edge:code", f"if (!user) {{\n    throw new Error(\"{s.replace(chr(34), '')}\");\n}}"),
        ("edge:code", f"<p class=\"note\">{s}</p>"),
    ]
    kind, text = rng.choice(noise)
    kind2, text2 = rng.choice(code)
    return [
        {"text": text, "label": label, "kind": kind},
        {"text": text2, "label": label, "kind": kind2},
    ]


INSERTS = {
    "en": ["meeting", "deadline", "okay", "weekend", "by the way", "no problem", "sorry"],
    "de": ["bitte", "genau", "na ja", "Feierabend"],
    "es": ["vale", "gracias", "por favor", "¡vamos!"],
    "fr": ["merci", "voilà", "bon courage", "c'est la vie"],
    "tr": ["yani", "tamam", "inşallah"],
}


def mixed_rows(pool_natural: dict[str, list[str]], rng: random.Random, n_balanced: int, n_dominant: int) -> list[dict]:
    """Synthetic mixed-language rows from pool sentences only.

    Balanced: two sentences of different languages and similar length side by side,
    so neither has two thirds of the words (`ot`). Dominant: a sentence of ten or more
    words with one short phrase of another language inserted (keeps its label).
    """
    def n_words(t):
        return len(t.split())

    rows = []
    langs = sorted(pool_natural)
    spaced = [lang for lang in langs if lang != "zh"]  # word counts need spaces
    while len([r for r in rows if r["label"] == "ot"]) < n_balanced:
        a, b = rng.sample(spaced, 2)
        s1, s2 = rng.choice(pool_natural[a]), rng.choice(pool_natural[b])
        if 4 <= n_words(s1) <= 14 and 0.8 <= n_words(s1) / n_words(s2) <= 1.25:
            rows.append({"text": f"{s1} {s2}", "label": "ot", "kind": "edge:mixed", "source": f"augment:mixed:{a}+{b}"})
    while len(rows) < n_balanced + n_dominant:
        a = rng.choice(spaced)
        s = rng.choice(pool_natural[a])
        words = s.split()
        if len(words) < 10:
            continue
        other = rng.choice([k for k in INSERTS if k != a])
        at = rng.randint(1, len(words) - 1)
        text = " ".join(words[:at] + [rng.choice(INSERTS[other])] + words[at:])
        rows.append({"text": text, "label": a, "kind": "edge:mixed", "source": f"augment:mixed:{a}<{other}"})
    return rows


def nothing_natural(rng: random.Random) -> dict:
    """A row with numbers, links, handles or symbols and no words: always `ot`."""
    parts = rng.sample(
        [rng.choice(NUMBERS), rng.choice(EMOJI) * rng.randint(1, 3), f"https://{rng.choice(DOMAINS)}/{rng.choice(SLUGS)}",
         rng.choice(HANDLES), rng.choice(TAGS), f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}", ":-)", "!!!", "…"],
        k=rng.randint(1, 3),
    )
    return {"text": " ".join(parts), "label": "ot", "kind": "edge:no-language"}


# ------------------------------------------------------------------ build


def _pool_folders(kind: str, reserve: bool) -> list[Path]:
    """Where the pool's extra ``kind`` sentences are: ``src/<kind>_pool``, and ``src/reserve/<kind>`` with ``reserve``."""
    return [SRC / f"{kind}_pool"] + ([SRC / "reserve" / kind] if reserve else [])


def _lines_of(stem: str, folders: list[Path]) -> list[str]:
    """The lines of ``<stem>.txt`` in each folder that has one, in the folders' order."""
    return [line for folder in folders if (folder / f"{stem}.txt").exists() for line in _read_lines(folder / f"{stem}.txt")]


def build(reserve: bool = False) -> dict[str, list[dict]]:
    """Every split's rows; ``reserve`` adds ``src/reserve`` to the pool (the gold sets stay as they are)."""
    splits: dict[str, list[dict]] = {"pool": [], "dev": [], "test": []}
    rng = random.Random(20261128)
    for label in LABELS[:-1]:
        rows = [{"text": t, "label": label, "kind": "natural", "source": f"natural:{label}"} for t in _read_lines(SRC / "natural" / f"{label}.txt")]
        for split, part in _split_counts(rows, NATURAL_SPLIT).items():
            splits[split].extend(part)
            # About one sentence in six also appears in a noisy and a code-wrapped form.
            for r in part[: max(3, len(part) // 6)]:
                for a in augment(r["text"], label, rng):
                    splits[split].append({**a, "source": f"augment:{r['source']}"})
    pool_rng = random.Random(11)  # its own generator, so that the gold sets' rows stay as they are
    natural_folders = _pool_folders("natural", reserve)
    for label in LABELS[:-1]:  # more natural sentences, for the pool only
        rows = [{"text": t, "label": label, "kind": "natural", "source": f"natural:{label}"}
                for t in _lines_of(label, natural_folders)]
        splits["pool"].extend(rows)
        for r in rows[: len(rows) // 6]:
            splits["pool"].extend({**a, "source": f"augment:{r['source']}"} for a in augment(r["text"], label, pool_rng))
    pool_natural: dict[str, list[str]] = {}
    for r in splits["pool"]:
        if r["kind"] == "natural":
            pool_natural.setdefault(r["label"], []).append(r["text"])
    splits["pool"].extend(mixed_rows(pool_natural, random.Random(7), n_balanced=250, n_dominant=250))
    other_folders = _pool_folders("other", reserve)
    for stem in sorted({p.stem for folder in other_folders for p in folder.glob("*.txt")}):  # for the pool only
        splits["pool"].extend({"text": t, "label": "ot", "kind": "other", "source": f"other:{stem}"}
                              for t in _lines_of(stem, other_folders))
    # Extra short, code and mixed inputs, for the pool only.
    for path, source in [(SRC / "short_pool.jsonl", "hard:short_pool")] + [
            (p, f"hard:extra_pool:{p.stem}") for p in sorted((SRC / "extra_pool").glob("*.jsonl"))]:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    obj = json.loads(line)
                    splits["pool"].append({"text": obj["text"], "label": obj["label"], "kind": obj["kind"], "source": source})
    for path in sorted((SRC / "other").glob("*.txt")):
        rows = [{"text": t, "label": "ot", "kind": "other", "source": f"other:{path.stem}"} for t in _read_lines(path)]
        for split, part in _split_counts(rows, OTHER_SPLIT).items():
            splits[split].extend(part)
    for path in sorted((SRC / "hard").glob("*.jsonl")):
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                rows.append({"text": obj["text"], "label": obj["label"], "kind": obj["kind"], "source": f"hard:{path.stem}"})
        n = len(rows)
        counts = {"test": round(n * HARD_SPLIT["test"]), "dev": round(n * HARD_SPLIT["dev"])}
        for split, part in _split_counts(rows, counts).items():
            splits[split].extend(part)
    for split, n in (("pool", 60), ("dev", 15), ("test", 20)):
        splits[split].extend({**nothing_natural(rng), "source": "augment:no-language"} for _ in range(n))
    # Drop repeats (by normalised text; texts without letters by exact text), keeping the first.
    seen: set[str] = set()
    for split in ("test", "dev", "pool"):
        kept = []
        for r in splits[split]:
            k = normalise(r["text"]) or r["text"]
            if k in seen:
                continue
            seen.add(k)
            kept.append(r)
        splits[split] = sorted(kept, key=lambda r: _key(r["text"], "order"))
    return splits


def counts_table(splits: dict[str, list[dict]]) -> str:
    lines = ["| file | rows | " + " | ".join(LABELS) + " |", "|---|---:|" + "---:|" * len(LABELS)]
    names = {"pool": "queries.jsonl", "dev": "dev_gold.jsonl", "test": "test_gold.jsonl"}
    for split in ("pool", "dev", "test"):
        c = Counter(r["label"] for r in splits[split])
        lines.append(f"| {names[split]} | {len(splits[split])} | " + " | ".join(str(c[lab]) for lab in LABELS) + " |")
    kinds = sorted({r["kind"] for s in splits.values() for r in s})
    lines += ["", "| file | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for split in ("pool", "dev", "test"):
        c = Counter(r["kind"] for r in splits[split])
        lines.append(f"| {names[split]} | " + " | ".join(str(c[k]) for k in kinds) + " |")
    return "\n".join(lines)


README = """\
# The course's data

Everything here was written for this project: the sentences by hand (by the
course's authors, with the help of a language model, composed fresh rather than
taken from any corpus, web page or other repository), the hard cases by hand and
by the deterministic augmentation in `scripts/build_data.py`. Licence: the same
as the repository (MIT).

## Files
- `queries.jsonl`: the distillation pool, the queries the teacher labels. Each row has
  `text`, and for reference `label`, `kind` and `source` (where it came from); the
  course's generator reads only `text`, the teacher provides the labels.
- `dev_gold.jsonl`: gold labels for iterating on the prompt.
- `test_gold.jsonl`: gold labels for the final evaluation; never used to tune anything.
- `src/`: the sources, and `src/POLICY.md`, the labelling policy in brief. The gold sets
  draw on `src/natural`, `src/other` and `src/hard`; `src/natural_pool`, `src/other_pool`,
  `src/short_pool.jsonl` and `src/extra_pool/*.jsonl` feed the query pool only.
- `src/reserve/`: 6,115 more sentences (about 400 in each of the twelve languages, 1,310 in 24
  others), written for a data-volume study and left out of the course's pool (the main
  README's Benchmarks say why). `python scripts/build_data.py --with-reserve --pool-out FILE`
  writes the pool with them (22,342 queries); the gold sets stay as they are.

Gold labels follow the teacher prompt's policy (`helpers/prompt.py`); `kind` is
`natural` (a sentence in one of the twelve languages), `other` (a language outside
the label set, so `ot`) or `edge:<why>` (code, noise, mixed, romanised, short,
no-language). The three files are disjoint: no two rows share the same text once
case, punctuation and spacing are ignored (`tests/test_data.py` checks it).

Schema: one JSON object a line, `{"text": str, "label": str, "kind": str, "source": str}`.
Extra keys are allowed and ignored.

## Counts (made by `python scripts/build_data.py`; a test fails when they drift)

<!-- counts:start -->
{counts}
<!-- counts:end -->
"""


def render_readme(splits) -> str:
    return README.replace("{counts}", counts_table(splits))


def jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def outputs(splits) -> dict[Path, str]:
    return {
        DATA / "queries.jsonl": jsonl(splits["pool"]),
        DATA / "dev_gold.jsonl": jsonl(splits["dev"]),
        DATA / "test_gold.jsonl": jsonl(splits["test"]),
        DATA / "README.md": render_readme(splits),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    ap.add_argument("--with-reserve", action="store_true", help="add data/src/reserve to the pool (needs --pool-out)")
    ap.add_argument("--pool-out", type=Path, help="write only the query pool, to this file")
    args = ap.parse_args(argv)
    if args.with_reserve and not args.pool_out:
        ap.error("--with-reserve needs --pool-out: the course's data/queries.jsonl is built without the reserve")
    if args.pool_out:
        pool = build(reserve=args.with_reserve)["pool"]
        args.pool_out.write_text(jsonl(pool), encoding="utf-8")
        print(f"wrote {args.pool_out} ({len(pool)} queries)")
        return 0
    files = outputs(build())
    if args.check:
        stale = [p.name for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"stale data files: {', '.join(stale)}; run python scripts/build_data.py", file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
