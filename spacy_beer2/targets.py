"""Training targets from gold mentions: pure functions over token offsets, no model involved.

Golds are (start, end-exclusive, KB row) token spans of one doc; row -1 marks a NIL or out-of-KB mention: a real
mention (the mention head learns it) that is no candidate's positive (for its negatives, see ``nil_candidates``).
"""

from typing import List, Sequence, Tuple

import numpy

from .aliases import DocMatches

Gold = List[Tuple[int, int, int]]


def reader_targets(windows: Sequence[Tuple[int, int, int]], candidates: numpy.ndarray, golds: Sequence[Gold],
                   window_size: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Gold start and end masks (W, C, S+1) of every (window, candidate).

    Position p+1 is window token p; position 0 ("no answer") is set for candidates not mentioned in the window
    (padding candidates included: the loss masks them). A candidate mentioned twice has two gold starts and ends.
    """
    W, C = candidates.shape
    start = numpy.zeros((W, C, window_size + 1), dtype=bool)
    end = numpy.zeros_like(start)
    for w, (d, s, e) in enumerate(windows):
        column = {int(r): c for c, r in enumerate(candidates[w]) if r >= 0}
        for gs, ge, row in golds[d]:
            c = column.get(row) if row >= 0 else None
            if c is not None and gs >= s and ge <= e:
                start[w, c, gs - s + 1] = True
                end[w, c, ge - s] = True
    mentioned = start.any(-1)
    start[..., 0] = ~mentioned
    end[..., 0] = ~mentioned
    return start, end


def nil_candidates(windows: Sequence[Tuple[int, int, int]], candidates: numpy.ndarray, golds: Sequence[Gold],
                   matches: Sequence[DocMatches]) -> numpy.ndarray:
    """(W, C): the candidates that the alias table lists for a NIL mention of the window, unless gold there.

    A NIL mention's entity is unknown, not absent: AIDA marks "Turkey" NIL 30 times in train and "West Bank" 24
    times, for entities the KB has. As "no answer" targets these teach the reader and the retriever to refuse the
    entities whenever the surface comes; with ``nil_negatives = false`` their loss terms are dropped in that window.
    """
    W, C = candidates.shape
    out = numpy.zeros((W, C), dtype=bool)
    for w, (d, s, e) in enumerate(windows):
        nils = {(gs, ge) for gs, ge, row in golds[d] if row < 0 and gs >= s and ge <= e}
        if not nils:
            continue
        listed = {row for ms, me, rows, _ in matches[d].within(s, e) if (ms, me) in nils for row in rows}
        gold = {row for gs, ge, row in golds[d] if row >= 0 and gs >= s and ge <= e}
        out[w] = [int(r) in listed and int(r) not in gold for r in candidates[w]]
    return out


def mention_targets(gold: Gold, n_tokens: int, max_span_length: int) -> numpy.ndarray:
    """The mention head's target (n_tokens, max_span_length): entry [i, l] is tokens i..i+l; every gold mention,
    linked or NIL, that is not longer than ``max_span_length``."""
    target = numpy.zeros((n_tokens, max_span_length), dtype=bool)
    for gs, ge, _ in gold:
        if 0 < ge - gs <= max_span_length and ge <= n_tokens:
            target[gs, ge - gs - 1] = True
    return target


def valid_spans(n_tokens: int, max_span_length: int) -> numpy.ndarray:
    """Which entries [i, l] of a doc's span grid are real spans (they end inside the doc)."""
    return (numpy.arange(n_tokens)[:, None] + numpy.arange(max_span_length)[None, :]) < n_tokens
