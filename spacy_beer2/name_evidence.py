"""Name evidence: where a window writes a candidate's name, the first or the last words of it, or its initials.

The prior table links an entity only to the surfaces it was built from. News names a national team by its country
("Japan" for the Japan national football team), a club by its town, a person by the surname ("Lara" for Brian
Lara), an organisation by its initials ("NHL"), and a KB swapped in with ``set_kb`` may know an entity by nothing
but its title: on AIDA testb a quarter of the gold mentions have a surface the table does not list their entity
for, most of them the first or the last words of its name. For every candidate the reader sees, however it was
retrieved, this module marks the spans of the window that are its whole name, its first words, its last words or
its initials: evidence from the KB's names alone, the same for any KB, that the reader weighs against the context
(a country's name is also the first words of its national team, its airline and its embassy).
"""

import bisect
from functools import lru_cache
from typing import Callable, Dict, List, Sequence, Tuple

import numpy

from .aliases import MINOR_WORDS, acronyms, entity_name_words, is_acronym, name_like, name_words

NAME_RELATIONS = ("name", "name_start", "name_end", "acronym")
ACRONYM = NAME_RELATIONS.index("acronym")
_INNER_PUNCTUATION = frozenset({",", "&", "-", "'", "/"})  # written inside names: "Washington , D.C.", "AT & T"
NameKey = Tuple[str, ...]


class DocNames:
    """The name-like spans of one doc by their name words: spans of at most ``max_length`` tokens of capitalised
    words and numbers (how names are written), minor words ("of", "de") and commas inside, each under
    ``name_words`` of its text; and its all-capitals tokens (``aliases.is_acronym``) by their letters."""

    def __init__(self, words: Sequence[str], max_length: int):
        token_words = [_token_words(word) for word in words]
        named = [name_like(word) for word in words]
        spans: Dict[NameKey, List[Tuple[int, int]]] = {}
        n = len(words)
        for start in range(n):
            if not named[start] or not token_words[start]:
                continue
            key: NameKey = ()
            for end in range(start + 1, min(n, start + max_length) + 1):
                inner = token_words[end - 1]
                if named[end - 1]:
                    key += inner
                    if inner:
                        spans.setdefault(key, []).append((start, end))
                elif words[end - 1] in _INNER_PUNCTUATION or (len(inner) == 1 and inner[0] in MINOR_WORDS):
                    key += inner
                else:
                    break  # names run across "of", "de" and commas, not across other words, stops or brackets
        self.spans = spans
        initials: Dict[NameKey, List[Tuple[int, int]]] = {}
        for i, word in enumerate(words):
            if is_acronym(word):
                initials.setdefault((word.lower(),), []).append((i, i + 1))
        self.initials = initials

    def find(self, relation: int, key: NameKey) -> List[Tuple[int, int]]:
        """The spans that stand in ``relation`` (an index of ``NAME_RELATIONS``) to a name with this key."""
        return (self.initials if relation == ACRONYM else self.spans).get(key, [])


@lru_cache(maxsize=1 << 16)
def _token_words(word: str) -> NameKey:
    """``name_words`` of a token (the same few thousand words recur in every doc)."""
    return tuple(name_words(word))


def name_keys(name: str) -> Tuple[Tuple[int, NameKey], ...]:
    """(relation, words) under which a span relates to an entity of this name (its "(...)" qualifier dropped): the
    whole name, each of its proper openings, each of its proper endings and its initials (``aliases.acronyms``; see
    ``NAME_RELATIONS``). Parts made of minor words only ("The" of "The Beatles") are no evidence and left out."""
    words = entity_name_words(name)
    if not words:
        return ()
    keys = [(0, tuple(words))]
    for k in range(1, len(words)):
        for relation, part in ((1, words[:k]), (2, words[-k:])):
            if not all(word in MINOR_WORDS for word in part):
                keys.append((relation, tuple(part)))
    keys.extend((ACRONYM, (initials,)) for initials in acronyms(name))
    return tuple(keys)


def name_features(names: Sequence[DocNames], windows: Sequence[Tuple[int, int, int]], candidates: numpy.ndarray,
                  keys: Callable[[int], Tuple[Tuple[int, NameKey], ...]], window_size: int
                  ) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Per (window, candidate), whether the window writes its name / first words / last words / initials anywhere
    (W, C, R = len(NAME_RELATIONS)); per (window, candidate, position), the same for spans that start (end) there
    (W, C, S+1, R; position 0 is the no-answer slot). ``keys`` gives a KB row's ``name_keys``.

    A candidate recurs in the overlapping windows of its doc: its spans are looked up once per doc, a window visits
    only the candidates written somewhere in the doc, and only their spans inside it (by bisection: a long doc
    that repeats a name a thousand times stays linear)."""
    W, C = candidates.shape
    R = len(NAME_RELATIONS)
    cand = numpy.zeros((W, C, R), dtype="float32")
    start = numpy.zeros((W, C, window_size + 1, R), dtype="float32")
    end = numpy.zeros_like(start)
    by_doc: Dict[int, List[int]] = {}
    for w, (d, _, _) in enumerate(windows):
        by_doc.setdefault(d, []).append(w)
    for d, doc_windows in by_doc.items():
        lookup = (names[d].spans.get, names[d].initials.get)  # (find, inlined: this loop is the hot one)
        lo, hi = min(windows[w][1] for w in doc_windows), max(windows[w][2] for w in doc_windows)
        spans: Dict[int, List[Tuple[int, int, int]]] = {}  # row -> (start, end, relation) in these windows, sorted
        doc_candidates = candidates[doc_windows]
        rows = numpy.unique(doc_candidates)
        for row in rows[rows >= 0].tolist():
            found = []
            for relation, key in keys(row):
                where = lookup[relation == ACRONYM](key)  # by start: only the part these windows cover
                if where is None:
                    continue  # most candidates' names are nowhere in the doc
                for i in range(bisect.bisect_left(where, (lo,)), len(where)):
                    ms, me = where[i]
                    if ms >= hi:
                        break
                    found.append((ms, me, relation))
            if found:
                spans[row] = sorted(found)
        if not spans:
            continue
        written = numpy.isin(doc_candidates, numpy.fromiter(spans, dtype=candidates.dtype, count=len(spans)))
        at_window, at_candidate = numpy.nonzero(written)
        for i, c, row in zip(at_window.tolist(), at_candidate.tolist(), doc_candidates[written].tolist()):
            w = doc_windows[i]
            _, s, e = windows[w]
            row_spans = spans[row]
            for j in range(bisect.bisect_left(row_spans, (s,)), len(row_spans)):
                ms, me, relation = row_spans[j]
                if ms >= e:
                    break  # a long doc repeats a name many times: only this window's are visited
                if me <= e:
                    cand[w, c, relation] = 1.0
                    start[w, c, ms - s + 1, relation] = 1.0
                    end[w, c, me - s, relation] = 1.0
    return cand, start, end
