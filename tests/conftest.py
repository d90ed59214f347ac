"""Shared fixtures: a tiny random BERT built locally, a synthetic KB and corpus, a tiny training config."""

import os
import random
import string
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest
import srsly

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KB_RECORDS = [
    {"id": "Paris", "name": "Paris", "description": "capital city of france on the seine river", "type": "LOC",
     "aliases": ["Paris"], "popularity": 6.0},
    {"id": "Paris Hilton", "name": "Paris Hilton", "description": "american media personality and heiress",
     "type": "PER", "aliases": ["Paris", "Hilton"], "popularity": 4.0},
    {"id": "Jordan", "name": "Jordan", "description": "country in western asia with amman as capital", "type": "LOC",
     "aliases": ["Jordan"], "popularity": 5.0},
    {"id": "Michael Jordan", "name": "Michael Jordan", "description": "american basketball player for chicago",
     "type": "PER", "aliases": ["Jordan"], "popularity": 5.5},
    {"id": "Chicago Bulls", "name": "Chicago Bulls", "description": "basketball team from chicago", "type": "ORG",
     "aliases": ["Bulls", "Chicago"], "popularity": 4.5},
    {"id": "Chicago", "name": "Chicago", "description": "large city in illinois on lake michigan", "type": "LOC",
     "aliases": ["Chicago"], "popularity": 6.0},
    {"id": "Amman", "name": "Amman", "description": "capital city of jordan", "type": "LOC", "aliases": [],
     "popularity": 3.0},
    {"id": "Seine", "name": "Seine", "description": "river that flows through paris", "type": "LOC",
     "aliases": ["Seine"], "popularity": 3.0},
]

TEMPLATES = [
    ("{a} scored for the {b} last night .", [("a", "Michael Jordan", "Jordan"), ("b", "Chicago Bulls", "Bulls")]),
    ("The river {a} runs through {b} .", [("a", "Seine", "Seine"), ("b", "Paris", "Paris")]),
    ("{a} visited {b} in the summer .", [("a", "Paris Hilton", "Paris Hilton"), ("b", "Chicago", "Chicago")]),
    ("The king of {a} met officials in {b} .", [("a", "Jordan", "Jordan"), ("b", "Amman", "Amman")]),
    ("Fans in {a} cheered {b} again .", [("a", "Chicago", "Chicago"), ("b", "Michael Jordan", "Jordan")]),
    ("{a} flew from {b} to {c} .", [("a", "Paris Hilton", "Paris"), ("b", "Paris", "Paris"),
                                      ("c", "Amman", "Amman")]),
]


def make_doc(template, slots) -> Dict:
    text, mentions = template, []
    for key, entity, surface in slots:
        start = text.index("{" + key + "}")
        text = text[:start] + surface + text[start + len(key) + 2:]
        mentions.append((start, start + len(surface), entity))
    # earlier replacements shift later offsets: recompute from the final text, left to right
    out, cursor = [], 0
    for _, _, entity in sorted(mentions):
        surface = next(s for k, e, s in slots if e == entity and text.find(s, cursor) >= 0)
        start = text.index(surface, cursor)
        out.append({"start": start, "end": start + len(surface), "entity": entity})
        cursor = start + len(surface)
    return {"id": f"doc{abs(hash(text)) % 10**8}", "text": text, "mentions": out}


def synthetic_docs() -> List[Dict]:
    return [make_doc(t, s) for t, s in TEMPLATES]


def _vocab() -> List[str]:
    words = set()
    for rec in KB_RECORDS:
        words.update(f"{rec['name']} {rec['description']}".lower().split())
    for template, _ in TEMPLATES:
        words.update(template.lower().replace("{", " ").replace("}", " ").split())
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + pieces + ["##" + p for p in pieces]
    return list(dict.fromkeys(tokens))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with a WordPiece vocab covering the synthetic data."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    (path / "vocab.txt").write_text("\n".join(_vocab()) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=256)
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def kb_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "kb.jsonl"
    srsly.write_jsonl(path, KB_RECORDS)
    return path


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "train.jsonl"
    srsly.write_jsonl(path, synthetic_docs())
    return path


CONFIG = Path(__file__).parent.parent / "configs" / "beer2.cfg"
TINY_OVERRIDES = {
    "components.beer2_linker.model.reader_width": 32,
    "components.beer2_linker.model.reader_heads": 2,
    "components.beer2_linker.model.window_size": 8,
    "components.beer2_linker.model.window_stride": 4,
    "components.beer2_linker.model.max_span_length": 4,
    "components.beer2_linker.n_candidates": 4,
    "components.beer2_linker.n_train_candidates": 4,
    "components.beer2_linker.n_span_candidates": 2,
    "components.beer2_linker.n_random_negatives": 1,
    "components.beer2_linker.learn_rate": 0.003,
    "components.beer2_linker.model.dropout": 0.0,
    "components.transformer.model.get_spans.window": 32,
    "components.transformer.model.get_spans.stride": 24,
}


def build_nlp(tiny_bert: Path, kb_path: Path, corpus_path: Path, prepare_gold: Optional[Callable] = None,
              **overrides):
    """A tiny transformer + beer2_linker pipeline from configs/beer2.cfg, initialized on the synthetic corpus
    (its gold docs first given to ``prepare_gold``, if any)."""
    import spacy
    from spacy.training import Example
    from thinc.api import fix_random_seed

    from spacy_beer2.corpus import read_jsonl_docs

    fix_random_seed(0)
    random.seed(0)
    settings = {**TINY_OVERRIDES, "paths.transformer": str(tiny_bert), "paths.kb": str(kb_path), **overrides}
    config = spacy.util.load_config(CONFIG, overrides=settings, interpolate=True)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    gold = list(read_jsonl_docs(corpus_path, nlp))
    if prepare_gold is not None:
        prepare_gold(gold)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in gold]
    optimizer = nlp.initialize(lambda: examples)
    return nlp, examples, optimizer


@pytest.fixture
def make_nlp(tiny_bert, kb_path, corpus_path):
    return lambda prepare_gold=None, **overrides: build_nlp(tiny_bert, kb_path, corpus_path, prepare_gold,
                                                            **overrides)


def train(nlp, examples, optimizer, steps):
    history = []
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        history.append(losses["beer2_linker"])
    return history


def links(nlp, texts):
    return [[(e.start_char, e.end_char, e.label_, e.kb_id_, round(e._.beer2_score, 5)) for e in doc.ents]
            for doc in nlp.pipe(texts)]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_bert, kb_path, corpus_path):
    """A tiny pipeline trained until it has memorised the synthetic corpus, saved to disk."""
    nlp, examples, optimizer = build_nlp(tiny_bert, kb_path, corpus_path)
    history = train(nlp, examples, optimizer, 100)
    path = tmp_path_factory.mktemp("trained") / "model"
    nlp.to_disk(path)
    return nlp, examples, history, path
