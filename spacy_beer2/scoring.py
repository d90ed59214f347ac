"""End-to-end entity-linking scores: InKB micro P/R/F with strong matching (EL) and on spans alone (MD).

spaCy's ``Scorer.score_links`` only scores disambiguation on gold spans; end-to-end linking also has to find the
spans. A prediction is an EL true positive iff its character span and its entity equal a gold mention's (exact
ids: "AYR" and "Ayr" are two entities; corpora are mapped onto a KB's ids at convert time); predictions on the
exact span of a gold NIL mention are ignored; every other prediction counts. Predicted ents without a kb_id (from
another component) are not linker predictions.
"""

from typing import Any, Callable, Dict, Iterable, Iterator, Set, Tuple

from spacy.tokens import Span
from spacy.training import Example
from spacy.util import registry

from .corpus import NIL

CANDIDATES = "beer2_candidates"  # the span extension the linker writes its best candidates to
SCORE = "beer2_score"  # the span extension the linker writes the link's score to


def _prf(tp: int, n_pred: int, n_gold: int, prefix: str) -> Dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {f"{prefix}_p": p, f"{prefix}_r": r, f"{prefix}_f": f}


def score_el(examples: Iterable[Example], **kwargs: Any) -> Dict[str, float]:
    """el_p/el_r/el_f and md_p/md_r/md_f over ``examples`` (gold in ``reference``, output in ``predicted``)."""
    el_tp = md_tp = n_pred = n_gold = 0
    for eg in examples:
        gold: Set[Tuple[int, int, str]] = set()
        nil: Set[Tuple[int, int]] = set()
        for ent in eg.reference.ents:
            if ent.kb_id_ and ent.kb_id_ != NIL:
                gold.add((ent.start_char, ent.end_char, ent.kb_id_))
            else:
                nil.add((ent.start_char, ent.end_char))
        gold_spans = {(s, e) for s, e, _ in gold}
        for ent in eg.predicted.ents:
            if not ent.kb_id_ or ent.kb_id_ == NIL or (ent.start_char, ent.end_char) in nil:
                continue
            n_pred += 1
            md_tp += (ent.start_char, ent.end_char) in gold_spans
            el_tp += (ent.start_char, ent.end_char, ent.kb_id_) in gold
        n_gold += len(gold)
    return {**_prf(el_tp, n_pred, n_gold, "el"), **_prf(md_tp, n_pred, n_gold, "md")}


@registry.scorers("spacy-beer2.el_scorer.v1")
def make_el_scorer() -> Callable[..., Dict[str, float]]:
    return score_el


OUTCOMES = ("correct", "wrong_entity_gold_in_candidates", "wrong_entity_gold_not_in_candidates", "wrong_boundary",
            "missed")


def mention_outcomes(examples: Iterable[Example]) -> Iterator[Tuple[Span, str]]:
    """What happened to each InKB gold mention (one of ``OUTCOMES``): linked right; exact span with the wrong entity
    (split by whether the gold entity was among the span's candidates in ``span._.beer2_candidates``); found with
    wrong boundaries; or missed (no overlapping prediction)."""
    for eg in examples:
        predicted = [ent for ent in eg.predicted.ents if ent.kb_id_ and ent.kb_id_ != NIL]
        by_span = {(ent.start_char, ent.end_char): ent for ent in predicted}
        for gold in eg.reference.ents:
            if not gold.kb_id_ or gold.kb_id_ == NIL:
                continue
            ent = by_span.get((gold.start_char, gold.end_char))
            if ent is not None:
                if ent.kb_id_ == gold.kb_id_:
                    yield gold, "correct"
                else:
                    listed = ent._.get(CANDIDATES) if Span.has_extension(CANDIDATES) else None
                    candidates = {c for c, _ in listed or []}
                    yield gold, "wrong_entity_gold_in_candidates" if gold.kb_id_ in candidates else \
                        "wrong_entity_gold_not_in_candidates"
            elif any(p.start_char < gold.end_char and gold.start_char < p.end_char for p in predicted):
                yield gold, "wrong_boundary"
            else:
                yield gold, "missed"


def error_breakdown(examples: Iterable[Example]) -> Dict[str, int]:
    """How many InKB gold mentions had each outcome (see ``mention_outcomes``), with their total as "gold"."""
    counts = dict.fromkeys(("gold",) + OUTCOMES, 0)
    for _, outcome in mention_outcomes(examples):
        counts["gold"] += 1
        counts[outcome] += 1
    return counts


def error_breakdown_by(examples: Iterable[Example], group: Callable[[Span], str]) -> Dict[str, Dict[str, Any]]:
    """The error breakdown per group of gold mentions (``group`` names each gold span's group), with each group's
    EL recall: where the linker's recall is lost, e.g. entities unseen in training, or without prior support."""
    groups: Dict[str, Dict[str, Any]] = {}
    for gold, outcome in mention_outcomes(examples):
        counts = groups.setdefault(group(gold), dict.fromkeys(("gold",) + OUTCOMES, 0))
        counts["gold"] += 1
        counts[outcome] += 1
    for counts in groups.values():
        counts["el_r"] = counts["correct"] / counts["gold"]
    return dict(sorted(groups.items()))
