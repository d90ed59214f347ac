"""The KB for the spaCy baseline (``ner`` + ``entity_linker``, see ``configs/baseline.cfg``).

The baseline must see the same entities as ``beer2_linker``, so the KB is built from our KB file: entity vectors
from the pretrained encoder that the pipeline fine-tunes, candidates by exact (case-sensitive) lookup of a
mention's text among entity names and aliases, priors from popularity.
"""

from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Dict, List

import numpy
from spacy.util import registry

from .encoder import EntityEncoder
from .kb import KnowledgeBase, load_kb
from .util import resolve_transformer_path

if TYPE_CHECKING:
    from spacy.kb import InMemoryLookupKB
    from spacy.vocab import Vocab


def alias_table(kb: KnowledgeBase) -> Dict[str, List[int]]:
    """Alias string -> rows of the entities with that name or alias, in KB order, without repeats."""
    table: Dict[str, List[int]] = defaultdict(list)
    for row, ent in enumerate(kb):
        for alias in dict.fromkeys([ent.name, *ent.aliases]):
            if alias.strip():
                table[alias].append(row)
    return dict(table)


def alias_priors(popularity: numpy.ndarray) -> numpy.ndarray:
    """P(entity | alias) proportional to exp(popularity), so a log in-link count gives priors in proportion to
    the in-links; scaled a hair below 1 so float rounding never trips spaCy's sum <= 1 check."""
    weights = numpy.exp(popularity - popularity.max())
    return weights / weights.sum() * (1.0 - 1e-6)


def build_lookup_kb(vocab: "Vocab", kb: KnowledgeBase, vectors: numpy.ndarray) -> "InMemoryLookupKB":
    """An ``InMemoryLookupKB`` over ``kb`` with one vector row per entity (in KB order)."""
    from spacy.kb import InMemoryLookupKB

    lookup = InMemoryLookupKB(vocab=vocab, entity_vector_length=vectors.shape[1])
    popularity = numpy.asarray([ent.popularity for ent in kb], dtype="float64")
    lookup.set_entities(kb.ids, popularity.tolist(), vectors.tolist())
    for alias, rows in alias_table(kb).items():
        lookup.add_alias(alias, [kb[row].id for row in rows], alias_priors(popularity[rows]).tolist())
    return lookup


@registry.misc("spacy-beer2.BaselineKB.v1")
def make_baseline_kb(kb_path: str, transformer: str, batch_size: int = 128) -> Callable[["Vocab"], "InMemoryLookupKB"]:
    """``kb_loader`` for ``entity_linker``: our KB file (JSONL or title list), encoded by ``transformer``.

    Encoding happens when spaCy calls the loader (at ``initialize``), not when the config is resolved.
    """

    def load(vocab: "Vocab") -> "InMemoryLookupKB":
        from transformers import AutoModel, AutoTokenizer

        kb = load_kb(kb_path)
        path = resolve_transformer_path(transformer)
        encoder = EntityEncoder(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path))
        return build_lookup_kb(vocab, kb, encoder.encode(kb.texts(), batch_size=batch_size))

    return load
