"""Entity-linking corpora: JSONL documents with character-offset mentions, to spaCy Docs and DocBins.

A line is ``{"id": str, "text": str, "mentions": [{"start": int, "end": int, "entity": str | null}]}``. Linked
mentions become ents with ``kb_id_`` set to the entity; NIL mentions (``entity`` null, or not in the KB when one is
given) become ents labelled ``NIL`` with kb_id ``NIL``, so that scoring ignores predictions on them and training
treats them as neither positives nor negatives.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import registry

from .kb import KnowledgeBase

NIL = "NIL"
GOLD_LABEL = "ENTITY"


class CorpusError(ValueError):
    """A corpus line that cannot be read, with the file and line at fault."""


@dataclass
class ConversionStats:
    docs: int = 0
    linked: int = 0
    nil: int = 0
    not_in_kb: int = 0
    realigned: int = 0  # mention boundaries inside a token, widened to token boundaries
    overlapping: int = 0  # mentions dropped because they overlap an earlier one


def read_jsonl_docs(path: Union[str, Path], nlp: Language, kb: Optional[KnowledgeBase] = None,
                    stats: Optional[ConversionStats] = None) -> Iterator[Doc]:
    """Docs with gold ents from a JSONL corpus; raises CorpusError with file and line for a malformed line."""
    path = Path(path)
    stats = stats if stats is not None else ConversionStats()
    with open(path, encoding="utf8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{where}: invalid JSON ({err.msg})") from None
            yield _make_doc(record, nlp, kb, stats, where)


def _make_doc(record: object, nlp: Language, kb: Optional[KnowledgeBase], stats: ConversionStats,
              where: str) -> Doc:
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise CorpusError(f"{where}: expected an object with a string field 'text'")
    text = record["text"]
    mentions = record.get("mentions", [])
    if not isinstance(mentions, list):
        raise CorpusError(f"{where}: field 'mentions' must be a list")
    doc = nlp.make_doc(text)
    doc.user_data["doc_id"] = str(record.get("id", where))
    spans: List[Span] = []
    for i, m in enumerate(mentions):
        if not isinstance(m, dict):
            raise CorpusError(f"{where}: mention {i} must be an object")
        start, end, entity = m.get("start"), m.get("end"), m.get("entity")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise CorpusError(f"{where}: mention {i} has bad offsets {start!r}..{end!r} for a text of {len(text)} "
                              "characters")
        if entity is not None and not isinstance(entity, str):
            raise CorpusError(f"{where}: mention {i} has a non-string entity {entity!r}")
        span = doc.char_span(start, end)
        if span is None:
            span = doc.char_span(start, end, alignment_mode="expand")
            stats.realigned += 1
        if entity is not None and kb is not None:
            row = kb.resolve(entity)
            if row is None:
                stats.not_in_kb += 1
                entity = None
            else:
                entity = kb[row].id
        if entity is None:
            stats.nil += 1
            spans.append(Span(doc, span.start, span.end, label=NIL, kb_id=NIL))
        else:
            stats.linked += 1
            spans.append(Span(doc, span.start, span.end, label=GOLD_LABEL, kb_id=entity))
    kept: List[Span] = []
    taken = set()
    for span in sorted(spans, key=lambda s: (s.start, -len(s))):
        if taken.intersection(range(span.start, span.end)):
            stats.overlapping += 1
            continue
        taken.update(range(span.start, span.end))
        kept.append(span)
    doc.ents = kept
    stats.docs += 1
    return doc


def convert(input_path: Union[str, Path], output_path: Union[str, Path], nlp: Language,
            kb: Optional[KnowledgeBase] = None) -> ConversionStats:
    """Write a JSONL corpus as a DocBin (.spacy) for ``spacy train``."""
    from tqdm import tqdm

    stats = ConversionStats()
    docbin = DocBin(store_user_data=True)
    for doc in tqdm(read_jsonl_docs(input_path, nlp, kb, stats), desc="Converting", unit="doc", mininterval=5.0):
        docbin.add(doc)
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    docbin.to_disk(output_path)
    return stats


@registry.readers("spacy-beer2.JsonlCorpus.v1")
def create_jsonl_corpus(path: Path, limit: int = 0) -> Callable[[Language], Iterable[Example]]:
    """Train or evaluate directly on a JSONL corpus: ``[corpora.train] @readers = "spacy-beer2.JsonlCorpus.v1"``."""

    def read(nlp: Language) -> Iterator[Example]:
        for i, gold in enumerate(read_jsonl_docs(path, nlp)):
            if limit and i >= limit:
                break
            yield Example(nlp.make_doc(gold.text), gold)

    return read

