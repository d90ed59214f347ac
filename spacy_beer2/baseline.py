"""The KB and candidate generator of the spaCy baselines (``ner`` + ``entity_linker``, configs/baseline*.cfg).

The baselines must see what ``beer2_linker`` sees: the same KB file (entity vectors from the pretrained encoder)
and the same candidate table, i.e. the prior table p(e|m) merged with every entity's names (``aliases.py``). Its
surfaces are lower-cased, so the baselines look mentions up lower-cased too (``LowercaseCandidates``).
"""

from typing import TYPE_CHECKING, Callable, Iterable, Optional

import numpy
from spacy.util import registry

from .aliases import AliasTable, build_candidate_table, normalize_surface
from .encoder import EntityEncoder
from .kb import KnowledgeBase, load_kb
from .util import resolve_transformer_path

if TYPE_CHECKING:
    from spacy.kb import Candidate, InMemoryLookupKB
    from spacy.kb import KnowledgeBase as SpacyKB
    from spacy.tokens import Span
    from spacy.vocab import Vocab

# spaCy checks that an alias's priors sum to at most 1: keep float rounding on the safe side.
_PRIOR_SLACK = 1.0 - 1e-6


def build_lookup_kb(vocab: "Vocab", kb: KnowledgeBase, vectors: numpy.ndarray, aliases: Optional[AliasTable],
                    n_alias_entities: int) -> "InMemoryLookupKB":
    """An ``InMemoryLookupKB`` over ``kb`` (one vector row per entity, in KB order) with the candidate table."""
    from spacy.kb import InMemoryLookupKB

    lookup = InMemoryLookupKB(vocab=vocab, entity_vector_length=vectors.shape[1])
    lookup.set_entities(kb.ids, [ent.popularity for ent in kb], vectors.tolist())
    for surface, (rows, probs) in build_candidate_table(kb, aliases, n_alias_entities).items():
        total = max(sum(probs), 1.0)
        lookup.add_alias(surface, [kb[row].id for row in rows], [p / total * _PRIOR_SLACK for p in probs])
    return lookup


@registry.misc("spacy-beer2.BaselineKB.v2")
def make_baseline_kb(kb_path: str, transformer: str, aliases: Optional[str] = None, batch_size: int = 128,
                     n_alias_entities: int = 10) -> Callable[["Vocab"], "InMemoryLookupKB"]:
    """``kb_loader`` for ``entity_linker``: our KB file (JSONL or title list), encoded by ``transformer``, with
    the prior table ``aliases`` (optional). Encoding happens when spaCy calls the loader (at ``initialize``)."""

    def load(vocab: "Vocab") -> "InMemoryLookupKB":
        from transformers import AutoModel, AutoTokenizer

        kb = load_kb(kb_path)
        path = resolve_transformer_path(transformer)
        encoder = EntityEncoder(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path))
        table = AliasTable.load(aliases) if aliases else None
        return build_lookup_kb(vocab, kb, encoder.encode(kb.texts(), batch_size=batch_size), table, n_alias_entities)

    return load


def lowercase_candidates(kb: "SpacyKB", mention: "Span") -> Iterable["Candidate"]:
    """spaCy's candidate generator, with the mention looked up in the form the table keeps (lower-cased)."""
    return kb.get_alias_candidates(normalize_surface(mention.text))


@registry.misc("spacy-beer2.LowercaseCandidates.v1")
def make_lowercase_candidates() -> Callable[["SpacyKB", "Span"], Iterable["Candidate"]]:
    return lowercase_candidates


@registry.misc("spacy-beer2.LowercaseCandidateBatches.v1")
def make_lowercase_candidate_batches() -> Callable[["SpacyKB", Iterable["Span"]], Iterable[Iterable["Candidate"]]]:
    return lambda kb, mentions: [lowercase_candidates(kb, mention) for mention in mentions]
