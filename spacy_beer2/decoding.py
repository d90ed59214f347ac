"""From the reader's window outputs to non-overlapping document spans."""

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from spacy.tokens import Doc, Token
from torch.nn import functional as F

from .aliases import fold, unqualified


@dataclass
class Link:
    start: int  # first token, document offsets
    end: int  # last token + 1
    row: int  # KB row
    score: float  # p_start * p_end * p_rank
    alternatives: List[Tuple[int, float]] = field(default_factory=list)  # (KB row, score) at the same span


def window_links(
    start: torch.Tensor,  # (W, C, S+1) logits, index 0 = no answer
    end: torch.Tensor,
    rank: torch.Tensor,  # (W, C)
    rows: torch.Tensor,  # (W, C) KB rows of the candidates, -1 = padding
    offsets: torch.Tensor,  # (W,) document position of each window's first token
    max_span_length: int,
    threshold: float,
    n_alternatives: int,
) -> List[Tuple[int, Link]]:
    """(window, link) for every span and candidate whose score exceeds ``threshold`` (see ``span_log_probs``).

    Only what can pass is scored: a candidate's best start, best end and rank bound each of its spans' scores (every
    factor is a probability), so candidates under the threshold by that bound are skipped, and the others are
    scored on the band of spans up to ``max_span_length`` tokens, not on all S x S pairs.
    """
    W, C, S1 = start.shape
    if W == 0 or C == 0 or S1 < 2:
        return []
    log_threshold = math.log(threshold)
    terms = _SpanTerms(start, end, rank)
    bound = terms.lp_start.max(-1).values + terms.lp_end.max(-1).values + terms.lp_rank
    kept = ((bound > log_threshold) & (rows >= 0)).nonzero()
    if not len(kept):
        return []
    scores = terms.band(kept[:, 0], kept[:, 1], min(max_span_length, S1 - 1))  # (K, S, L)
    hits = (scores > log_threshold).nonzero()
    if not len(hits):
        return []
    hit_w, hit_c = kept[hits[:, 0], 0], kept[hits[:, 0], 1]
    hit_s, hit_e = hits[:, 1], hits[:, 1] + hits[:, 2]
    hit_scores = scores[hits[:, 0], hits[:, 1], hits[:, 2]].exp().tolist()
    alternatives: Dict[Tuple[int, int, int], List[Tuple[int, float]]] = {}
    if n_alternatives:
        # every candidate's score on each distinct hit span: the best ones are the span's alternatives
        spans, inverse = torch.unique(torch.stack([hit_w, hit_s, hit_e], dim=1), dim=0, return_inverse=True)
        span_w, span_s, span_e = spans[:, 0:1], spans[:, 1:2], spans[:, 2:3]
        every = torch.arange(C, device=start.device).view(1, C)
        per_candidate = terms.score(span_w, every, span_s, span_e).masked_fill(rows[span_w.view(-1)] < 0,
                                                                               float("-inf"))
        top = torch.topk(per_candidate, min(n_alternatives, C), dim=-1)
        top_rows = rows[span_w, top.indices].tolist()
        top_probs = top.values.exp().tolist()
        for u, (sw, ss, se) in enumerate(spans.tolist()):
            alternatives[(sw, ss, se)] = [(r, p) for r, p in zip(top_rows[u], top_probs[u]) if r >= 0]
    links = []
    # one copy to the host, not one per link
    hit_rows, hit_offsets = rows[hit_w, hit_c].tolist(), offsets[hit_w.to(offsets.device)].tolist()
    for w_, s_, e_, row, offset, score in zip(hit_w.tolist(), hit_s.tolist(), hit_e.tolist(), hit_rows, hit_offsets,
                                              hit_scores):
        link = Link(offset + s_, offset + e_ + 1, row, score)
        link.alternatives = list(alternatives.get((w_, s_, e_), []))
        links.append((w_, link))
    return links


class _SpanTerms:
    """The per-position terms of ``span_log_probs``, from which the score of any (window, candidate, start, end)
    is a few gathers (indices broadcast against each other)."""

    def __init__(self, start: torch.Tensor, end: torch.Tensor, rank: torch.Tensor):
        self.lp_start = start.log_softmax(-1)[..., 1:]  # (W, C, S)
        self.lp_end = end.log_softmax(-1)[..., 1:]
        self.lp_rank = F.logsigmoid(rank)  # (W, C)
        # cumulative log(1 - p): [e] - [s] sums the starts s < k <= e; with a leading 0, the ends s <= k < e
        self.no_start = torch.log1p(-self.lp_start.exp().clamp(max=1 - 1e-6)).cumsum(-1)
        self.no_end = F.pad(torch.log1p(-self.lp_end.exp().clamp(max=1 - 1e-6)).cumsum(-1), (1, 0))

    def band(self, w: torch.Tensor, c: torch.Tensor, length: int) -> torch.Tensor:
        """Scores (K, S, length) of the spans of candidates (``w``, ``c``) from each start s to s + l (-inf past
        the window): ``score`` over a band, from K rows and sliding views instead of K x S x length gathers."""
        lp_start, lp_end, no_start, no_end = (t[w, c] for t in (self.lp_start, self.lp_end, self.no_start,
                                                                 self.no_end[..., :-1]))

        def ahead(x: torch.Tensor, fill: float) -> torch.Tensor:  # [k, s, l] = x[k, s + l]
            return F.pad(x, (0, length - 1), value=fill).unfold(-1, length, 1)

        return (lp_start.unsqueeze(-1) + ahead(lp_end, float("-inf")) + ahead(no_start, 0.0) - no_start.unsqueeze(-1)
                + ahead(no_end, 0.0) - no_end.unsqueeze(-1) + self.lp_rank[w, c].view(-1, 1, 1))

    def score(self, w: torch.Tensor, c: torch.Tensor, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return (self.lp_start[w, c, s] + self.lp_end[w, c, e] + self.no_start[w, c, e] - self.no_start[w, c, s]
                + self.no_end[w, c, e] - self.no_end[w, c, s] + self.lp_rank[w, c])


def span_log_probs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """log P(span s..e) of each candidate (W, C, S, S): p_start(s) · p_end(e) · Π (1 - p_start(k)) over the
    starts inside the span (s < k <= e) · Π (1 - p_end(k)) over the ends inside it (s <= k < e).

    The last two factors keep a candidate mentioned twice in a window from being decoded as one span from the first
    start to the second end: independent p_start · p_end would rank that span first.
    """
    lp_start = start.log_softmax(-1)[..., 1:]
    lp_end = end.log_softmax(-1)[..., 1:]
    # cumulative log(1 - p) with a leading 0, so that inner sums are differences
    no_start = torch.log1p(-lp_start.exp().clamp(max=1 - 1e-6)).cumsum(-1)
    no_end = F.pad(torch.log1p(-lp_end.exp().clamp(max=1 - 1e-6)).cumsum(-1), (1, 0))
    inner_starts = no_start.unsqueeze(2) - no_start.unsqueeze(3)  # [s, e]: sum over s < k <= e
    inner_ends = no_end[..., :-1].unsqueeze(2) - no_end[..., :-1].unsqueeze(3)  # [s, e]: sum over s <= k < e
    return lp_start.unsqueeze(3) + lp_end.unsqueeze(2) + inner_starts + inner_ends


def resolve(links: Iterable[Link]) -> List[Link]:
    """One link per span (the best over overlapping windows), then non-overlapping spans chosen by score."""
    best: Dict[Tuple[int, int], Link] = {}
    for link in links:
        key = (link.start, link.end)
        if key not in best or link.score > best[key].score:
            best[key] = link
    return _non_overlapping(sorted(best.values(), key=lambda lk: (-lk.score, lk.start, lk.end)))


def _non_overlapping(ranked: Iterable[Link]) -> List[Link]:
    """The links of ``ranked`` (best first) that overlap no link taken before them, in document order."""
    taken: List[Link] = []
    occupied = set()
    for link in ranked:
        tokens = range(link.start, link.end)
        if not occupied.intersection(tokens):
            occupied.update(tokens)
            taken.append(link)
    return sorted(taken, key=lambda lk: lk.start)


def complete_spans(doc: Doc, links: List[Link], name_of: Callable[[int], str]) -> List[Link]:
    """Mend the boundaries of resolved links where the text itself shows the whole mention.

    The span score keeps a likely start or end inside a span from being crossed (``span_log_probs``), and that
    splits names too: "Manchester" + "United", both linked to Manchester United F.C. So two links of one entity with
    a single space between them become one; and a link grows to its entity's name (or the name without its
    qualifier) where the text around it spells that out, case aside ("Gaza" → "Gaza Strip", "Troncon" →
    "Alessandro Troncon"). A grown link takes the place of the links it comes to overlap.
    """
    merged: List[Link] = []
    for link in links:
        prev = merged[-1] if merged else None
        if prev and prev.row == link.row and prev.end == link.start and doc[prev.end - 1].whitespace_ == " ":
            merged[-1] = replace(prev, end=link.end, score=max(prev.score, link.score))
        else:
            merged.append(link)
    text = _lower_in_place(doc.text)
    grown, kept = [], []
    for link in merged:
        span = _name_around(doc, text, link, name_of(link.row))
        if span:
            grown.append(replace(link, start=span[0], end=span[1]))
        else:
            kept.append(link)
    by_score = lambda lk: -lk.score  # noqa: E731
    return _non_overlapping(sorted(grown, key=by_score) + sorted(kept, key=by_score))


def link_name_repeats(doc: Doc, links: List[Link], is_person: Callable[[int], bool]) -> List[Link]:
    """Link a capitalised word that stands alone and repeats one word of a person's name linked elsewhere in the doc
    ("Woods" after "Tiger Woods", "Xiao" after "Xiao Qiang") to that person, unless the word is in the names of two
    linked people. News names a person in full once, then by one name; the reader, reading a window at a time, often
    misses the repeat: evidence from the rest of the document."""
    occupied = {i for link in links for i in range(link.start, link.end)}
    people: Dict[str, Dict[int, float]] = {}
    for link in links:
        if link.end - link.start > 1 and is_person(link.row):
            for token in doc[link.start:link.end]:
                if _is_name_word(token):
                    seen = people.setdefault(token.lower_, {})
                    seen[link.row] = max(link.score, seen.get(link.row, 0.0))
    added = []
    for token in doc:
        i = token.i
        if i in occupied or not _is_name_word(token) or len(people.get(token.lower_, ())) != 1:
            continue
        # standing alone: no capitalised word (outside a link) right before or after it
        if (i > 0 and _is_name_word(doc[i - 1]) and i - 1 not in occupied and doc[i - 1].whitespace_ == " ") or (
                i + 1 < len(doc) and _is_name_word(doc[i + 1]) and i + 1 not in occupied and token.whitespace_ == " "):
            continue
        ((row, score),) = people[token.lower_].items()
        added.append(Link(i, i + 1, row, score))
    return sorted(links + added, key=lambda lk: lk.start) if added else links


def _is_name_word(token: Token) -> bool:
    return token.is_alpha and token.text[:1].isupper() and len(token) >= 3


def _lower_in_place(text: str) -> str:
    """``text`` lower-cased character by character, so that offsets stay those of the doc ("İ" lower-cases to two
    characters)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _name_around(doc: Doc, text: str, link: Link, name: str) -> Optional[Tuple[int, int]]:
    """The longest token span that covers ``link`` and reads as the entity's name (``text`` is ``doc.text``
    lower-cased, offsets kept; the name is also tried without accents), or None."""
    first, last = doc[link.start], doc[link.end - 1]
    start_char, end_char = first.idx, last.idx + len(last)
    best: Optional[Tuple[int, int]] = None
    for target in {name.lower(), unqualified(name).lower(), fold(name), fold(unqualified(name))}:
        size = len(target)
        if size <= end_char - start_char:
            continue
        # an occurrence [at, at + size) covers the link when end_char - size <= at <= start_char
        at = text.find(target, max(0, end_char - size), start_char + size)
        while at != -1:
            span = doc.char_span(at, at + size)
            if span is not None and (best is None or len(span) > best[1] - best[0]):
                best = (span.start, span.end)
            at = text.find(target, at + 1, start_char + size)
    return best
