"""A span getter for the shared transformer: strided windows of about the same number of wordpieces.

spacy-transformers pads every span of a batch to the longest one. With ``strided_spans`` (a fixed number of spaCy
tokens) a window over a results table ("12:39.36 2. Kiptanui ( Kenya ) 12:48.98") holds two to three times the
wordpieces of a window of prose, so one long document, whose hundreds of windows form one batch, runs at the
length of its worst window, and attention is quadratic in it. Windows cut by an estimate of their wordpieces are
all about as long, so the cost per word stays flat as documents grow (README: Long documents).
"""

import bisect
import re
from functools import partial
from typing import Callable, List, Sequence, Tuple

from spacy.tokens import Doc, Span
from spacy_transformers.util import registry

_PIECES = re.compile(r"[^\W\d_]+|\d+|\S")


def estimated_pieces(text: str) -> int:
    """About how many wordpieces a BERT-style tokenizer makes of a token: a letter run of up to 6 characters is
    one piece (longer ones one per 6), a digit run one per 3 digits, any other character one."""
    count = 0
    for match in _PIECES.finditer(text):
        run = match.group()
        if run[0].isdigit():
            count += (len(run) + 2) // 3
        elif run[0].isalpha():
            count += (len(run) + 5) // 6
        else:
            count += 1
    return count


def budget_windows(costs: Sequence[int], window: int, stride: int) -> List[Tuple[int, int]]:
    """(start, end) token windows covering every token, each of at most ``window`` cost (or one token), starting
    about ``stride`` cost after the previous start; the last one ends at the end."""
    prefix = [0]
    for cost in costs:
        prefix.append(prefix[-1] + cost)
    n, out, start = len(costs), [], 0
    while start < n:
        end = max(start + 1, bisect.bisect_right(prefix, prefix[start] + window) - 1)
        out.append((start, end))
        if end >= n:
            break
        step = bisect.bisect_left(prefix, prefix[start] + stride)
        start = min(max(step, start + 1), end)
    return out


def get_wordpiece_strided_spans(docs: List[Doc], window: int, stride: int) -> List[List[Span]]:
    return [[doc[s:e] for s, e in budget_windows([estimated_pieces(t.text) for t in doc], window, stride)]
            for doc in docs]


@registry.span_getters("spacy-beer2.wordpiece_strided_spans.v1")
def configure_wordpiece_strided_spans(window: int = 128, stride: int = 96) -> Callable[[List[Doc]], List[List[Span]]]:
    """Like spacy-transformers' ``strided_spans.v1``, but ``window`` and ``stride`` count (estimated) wordpieces,
    not spaCy tokens, so that no window is much longer than another (see the module docstring). A partial, not a
    closure, so that pipelines pickle."""
    if not 0 < stride <= window:
        raise ValueError(f"stride must be in 1..window, got window={window}, stride={stride}")
    return partial(get_wordpiece_strided_spans, window=window, stride=stride)
