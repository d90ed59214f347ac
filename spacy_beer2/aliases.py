"""The alias table p(entity | mention surface): the classic candidate generator and prior of entity linking.

A prior table file is JSONL, one surface a line: ``{"alias": str, "entities": [[entity id, probability], ...]}``
(surfaces are matched lower-cased, without accents, whitespace folded). It serves the linker twice: every window
n-gram that is an alias adds its entities to the window's candidates, and p(e|m) of each (span, candidate) is
evidence the reader learns to weigh. The table is kept by entity id (so it survives a KB swap) and turned into KB
rows for the KB in use, where every entity is also reachable through its own name and aliases: a title-only KB with
no prior table still gets candidates by name (uniform among the entities that share it).
"""

import bisect
import re
import unicodedata
from array import array
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy

from .kb import HashBitmap, KBError, KnowledgeBase, StringColumn, StringIndex, read_jsonl_records

# A surface's entities, as parallel (KB rows, probabilities) sorted by probability.
Entry = Tuple[Tuple[int, ...], Tuple[float, ...]]
# An alias found in a doc: (start token, end token exclusive, KB rows, probabilities).
Match = Tuple[int, int, Tuple[int, ...], Tuple[float, ...]]

_QUALIFIER = re.compile(r"\s*\([^()]*\)$")
_COMMA_QUALIFIER = re.compile(r"^([^,]{3,}), [^,]+$")


def unqualified(name: str) -> str:
    """A Wikipedia name without what tells it apart from its namesakes: "Mercury (planet)" → "Mercury",
    "Gainesville, Florida" → "Gainesville" (one comma, at least three characters before it)."""
    name = _QUALIFIER.sub("", name)
    match = _COMMA_QUALIFIER.match(name)
    return match.group(1) if match else name


def fold(text: str) -> str:
    """Lower-cased and without accents: news text and KB names often differ only there ("Norberto Tellez" for
    "Norberto Téllez", "Alpay Ozalan" for "Alpay Özalan"). Other scripts keep their letters."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize_surface(text: str) -> str:
    """The form in which surfaces are compared: folded (see ``fold``), whitespace collapsed."""
    return " ".join(fold(text).split())


class AliasTable:
    """A mention → entity prior, p(e|m), keyed by surface and entity id."""

    def __init__(self, entries: Dict[str, List[Tuple[str, float]]]):
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_records(cls, records: Iterable[object], source: str = "<records>") -> "AliasTable":
        entries: Dict[str, List[Tuple[str, float]]] = {}
        for line_no, record in enumerate(records, start=1):
            surface, pairs = _parse_record(record, f"{source}:{line_no}")
            entries.setdefault(surface, []).extend(pairs)
        return cls(entries)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "AliasTable":
        """Read a JSONL prior table; a bad line fails with file, line and reason."""
        path = Path(path)
        if not path.exists():
            raise KBError(f"{path}: no such alias table")
        entries: Dict[str, List[Tuple[str, float]]] = {}
        for line_no, record in read_jsonl_records(path):
            surface, pairs = _parse_record(record, f"{path}:{line_no}")
            entries.setdefault(surface, []).extend(pairs)
        return cls(entries)

    def to_records(self) -> List[Dict]:
        return [{"alias": s, "entities": [[e, p] for e, p in pairs]} for s, pairs in self.entries.items()]


def _parse_record(record: object, where: str) -> Tuple[str, List[Tuple[str, float]]]:
    if not isinstance(record, dict) or not isinstance(record.get("alias"), str) or not record["alias"].strip():
        raise KBError(f"{where}: expected an object with a non-empty string field 'alias'")
    pairs = record.get("entities")
    if not isinstance(pairs, list):
        raise KBError(f"{where}: field 'entities' must be a list of [entity id, probability] pairs")
    out = []
    for pair in pairs:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str)
                or isinstance(pair[1], bool) or not isinstance(pair[1], (int, float)) or not 0 <= pair[1] <= 1):
            raise KBError(f"{where}: bad entity pair {pair!r}: expected [entity id, probability in 0..1]")
        out.append((pair[0], float(pair[1])))
    return normalize_surface(record["alias"]), out


class CandidateTable:
    """Surface → the best (KB rows, p(e|m)) for one KB (see ``build_candidate_table``).

    Surfaces of the prior table and of the entities that are more than a title live in a dict. The names of title
    entities whose surface is nobody else's (almost all of a Wikipedia title list: millions, which a dict would keep
    in gigabytes) are found through a hash index over the KB's ids instead, each uniform among the titles sharing it.
    """

    def __init__(self, kb: KnowledgeBase, entries: Dict[str, Entry], per_alias: int, titles: Sequence[int]):
        """``titles``: the rows of the title entities found by their name through the index, not the dict."""
        self.kb = kb
        self.entries = entries
        self.per_alias = per_alias
        self._titles = StringIndex(kb._ids, (normalize_surface(kb.id(r)) for r in titles), titles) if titles else None
        self._openings: Optional[HashBitmap] = None

    def get(self, surface: str, default: Optional[Entry] = None) -> Optional[Entry]:
        entry = self.entries.get(surface)
        if entry is not None or self._titles is None:
            return entry if entry is not None else default
        rows = sorted(self._titles.rows(surface, normalize_surface))[: self.per_alias]
        return (tuple(rows), (1.0 / len(rows),) * len(rows)) if rows else default

    def continues(self, surface: str) -> bool:
        """Whether some surface of the table is ``surface`` followed by more words. It may answer yes wrongly, never
        no wrongly (a ``HashBitmap`` of every surface's leading words, built on first use), so ``find_matches`` can
        stop growing a span as soon as it says no."""
        if self._openings is None:
            self._openings = HashBitmap(numpy.fromiter(
                (hash(opening) for surface in self.surfaces() for opening in _openings(surface)), dtype="int64"))
        return self._openings.may_contain(hash(surface))

    def surfaces(self) -> Iterator[str]:
        """Every surface: the dict's, then the title names found through the index (once per title entity)."""
        yield from self.entries
        yield from self._title_surfaces()

    def _title_surfaces(self) -> Iterator[str]:
        if self._titles is not None:
            for row in sorted(self._titles.rows_by_hash):
                yield normalize_surface(self.kb.id(row))

    def __getitem__(self, surface: str) -> Entry:
        entry = self.get(surface)
        if entry is None:
            raise KeyError(surface)
        return entry

    def __contains__(self, surface: str) -> bool:
        return self.get(surface) is not None

    def items(self) -> Iterator[Tuple[str, Entry]]:
        """Every surface and its entry, once (see ``surfaces``)."""
        yield from self.entries.items()
        seen = set()
        for surface in self._title_surfaces():
            if surface not in seen:
                seen.add(surface)
                yield surface, self[surface]


def _openings(surface: str) -> Iterator[str]:
    """The surface's leading words, each run shorter than the whole: "a b c" → "a", "a b"."""
    space = surface.find(" ")
    while space > 0:
        yield surface[:space]
        space = surface.find(" ", space + 1)


def build_candidate_table(kb: KnowledgeBase, aliases: Optional[AliasTable], per_alias: int) -> CandidateTable:
    """Surface → the best ``per_alias`` (KB rows, p(e|m)) for this KB.

    Prior-table entries are mapped onto the KB (unknown ids dropped). Every entity is also reachable through its
    name, its name without a qualifier (``unqualified``) and its aliases: with p = 0 beside a prior-table surface (a
    candidate the prior knows nothing of), else uniform among the entities sharing the surface.
    """
    table: Dict[str, Dict[int, float]] = {}
    if aliases is not None:
        for surface, pairs in aliases.entries.items():
            rows = table.setdefault(surface, {})
            for entity_id, prob in pairs:
                row = kb.resolve(entity_id)
                if row is not None:
                    rows[row] = max(prob, rows.get(row, 0.0))
    by_name: Dict[str, List[int]] = {}

    def add(surface: str, row: int) -> None:
        surface = normalize_surface(surface)
        if surface and (not by_name.get(surface) or by_name[surface][-1] != row):
            by_name.setdefault(surface, []).append(row)

    for row, ent in kb.rich():
        for surface in {ent.name, unqualified(ent.name), *ent.aliases}:
            add(surface, row)
    # titles: a qualified one ("mercury (planet)", "gainesville, florida") gives a second surface, kept here; a plain
    # title goes here only where its surface is also someone else's, else the table finds it through the KB's ids
    rich = kb._extra
    plain = []
    for row, entity_id in enumerate(kb._ids):
        if row not in rich:
            head = unqualified(entity_id) if entity_id.endswith(")") or ", " in entity_id else entity_id
            if head != entity_id:
                add(entity_id, row)
                add(head, row)
            else:
                plain.append(row)
    titles = []
    for row, entity_id in zip(plain, (kb._ids[row] for row in plain)):
        surface = normalize_surface(entity_id)
        if surface in table or surface in by_name:
            add(surface, row)
        else:
            titles.append(row)
    for surface, rows in by_name.items():
        known = table.get(surface)
        if known:
            for row in rows:
                known.setdefault(row, 0.0)
        else:
            table[surface] = {row: 1.0 / len(rows) for row in rows}
    entries: Dict[str, Entry] = {}
    for surface, rows in table.items():
        best = sorted(rows.items(), key=lambda item: -item[1])[:per_alias]
        if best:
            entries[surface] = (tuple(r for r, _ in best), tuple(p for _, p in best))
    return CandidateTable(kb, entries, per_alias, titles)


def find_matches(words: Sequence[str], spaces: Sequence[bool], table: CandidateTable,
                 max_length: int) -> List[Match]:
    """Every span of at most ``max_length`` tokens whose surface (``normalize_surface`` of its text) is in
    ``table``; spans never start or end on a token that folds to nothing but whitespace (a space, a newline, a
    lone combining accent).

    Each word is folded once and a span's surface grows by appending; once a word is followed by whitespace and no
    surface of the table goes on with the span's (``CandidateTable.continues``), no longer span from that start can
    match, and the next start is taken: most starts end after a lookup or two instead of ``max_length``.
    """
    matches: List[Match] = []
    n = len(words)
    folded = [fold(word) for word in words]
    cores = [" ".join(text.split()) for text in folded]  # whitespace collapsed inside the word, "" for blank ones
    for start in range(n):
        if not cores[start]:
            continue
        surface, gap = "", False  # gap: whitespace since the surface's last character
        for end in range(start + 1, min(n, start + max_length) + 1):
            i = end - 1
            text, core = folded[i], cores[i]
            if not core:
                gap = gap or spaces[i] or bool(text)
                continue
            if surface and (gap or text[0].isspace()):
                surface += " "
            surface += core
            gap = spaces[i] or text[-1].isspace()
            entry = table.get(surface)
            if entry is not None:
                matches.append((start, end, entry[0], entry[1]))
            if gap and not table.continues(surface):
                break
    return matches


def expand_short_names(words: Sequence[str], matches: List[Match],
                       eligible: Callable[[int], bool] = lambda row: True) -> List[Match]:
    """Add the document's short references to the entities it names in full: once "Alan Shearer" matched, a later
    (or earlier) capitalised "Shearer" is a match of the same ``eligible`` entities with the same p(e|m).

    News names a person (team, company) in full once, then by surname ("Walsh", "Lara", "Bulls"); the alias table
    alone gives those surnames no or other entities. Only the last word of a multi-word match counts, and only
    where it stands outside every multi-word match.
    """
    covered = set()
    short: Dict[str, Tuple[Dict[int, float], int]] = {}
    for start, end, rows, probs in matches:
        if end - start < 2:
            continue
        covered.update(range(start, end))
        last = words[end - 1]
        if len(last) < 3 or not last[0].isupper() or not last.isalpha():
            continue
        entry = short.setdefault(fold(last), ({}, end - start))[0]
        for row, prob in zip(rows, probs):
            if eligible(row):
                entry[row] = max(prob, entry.get(row, 0.0))
    found = []
    for i, word in enumerate(words):
        if i in covered or not word[:1].isupper():
            continue
        entry = short.get(fold(word))
        if entry is not None and entry[0]:
            best = sorted(entry[0].items(), key=lambda item: -item[1])
            found.append((i, i + 1, tuple(r for r, _ in best), tuple(p for _, p in best)))
    return matches + found


class NamePartIndex:
    """The entities whose name begins (or, ``from_end``, ends) with a surface followed (preceded) by more words:
    "Belgium" → "Belgium national football team", "Magna" → "Magna International", "Arlington" → "Arlington,
    Texas"; from the end, "Hollioake" → "Adam Hollioake", "Wasps" → "London Wasps".

    News names a team by its country or town, a company by its first word, a town without its state and a person
    by the surname; a prior table built from other text often lacks the pair (on AIDA testa, three in four of the
    gold mentions whose entity the table does not list for the surface are such a part of its name). The KB's names,
    normalized with commas as word breaks (words reversed ``from_end``), are kept sorted in one buffer (compact at
    Wikipedia scale), so a lookup is a binary search; of the names in range, the most popular (then shortest) come
    first.
    """

    def __init__(self, kb: KnowledgeBase, from_end: bool = False):
        self.from_end = from_end
        keys = [self.key(kb.id(row) if kb.is_title(row) else kb[row].name) for row in range(len(kb))]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        column = StringColumn.from_strings(keys[row] for row in order)
        del keys
        # bytes and array offsets: the binary search indexes them several times faster than a numpy array
        self._data, self._offsets = column.data, array("q", column.offsets.tobytes())
        self.rows = numpy.asarray(order, dtype="int64")
        popularity = numpy.zeros(len(kb), dtype="float32")
        for row, ent in kb.rich():
            popularity[row] = ent.popularity
        # popularity first; among equals (title-only entities) the shorter name, the one nearer the surface
        self.rank = popularity[self.rows] - 1e-3 * numpy.diff(column.offsets).astype("float32")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> str:
        """The ``i``-th key in sorted order (so that ``bisect`` searches the index itself)."""
        return self._data[self._offsets[i] : self._offsets[i + 1]].decode("utf8")

    def key(self, text: str) -> str:
        words = name_words(text)
        return " ".join(reversed(words) if self.from_end else words)

    def lookup(self, surface: str, k: int) -> Tuple[int, ...]:
        """The KB rows of at most ``k`` entities whose name is ``surface`` and more words (see ``key``); none
        exactly when no name is."""
        key = self.key(surface)
        if not key or k < 1:
            return ()
        # keys that continue ``key`` by a word are exactly those in [key + " ", key + "!"): "!" follows " "
        lo = bisect.bisect_left(self, key + " ")
        hi = bisect.bisect_left(self, key + "!", lo)
        if hi - lo > k:
            best = lo + numpy.argpartition(-self.rank[lo:hi], k - 1)[:k]
        else:
            best = numpy.arange(lo, hi)
        best = best[numpy.argsort(-self.rank[best], kind="stable")]
        return tuple(self.rows[best].tolist())


def name_words(text: str) -> List[str]:
    """The words of a name or surface as name parts are compared: folded, commas as word breaks."""
    return fold(text).replace(",", " ").split()


def entity_name_words(name: str) -> List[str]:
    """The words of an entity's name as a mention's surface is compared with them: ``name_words`` without the
    name's "(...)" qualifier."""
    return name_words(_QUALIFIER.sub("", name))


def name_relation(surface: str, name: str) -> str:
    """How a mention's surface stands to its entity's name: "name" (the same words), "name_start" ("Belgium" of
    "Belgium national football team"), "name_end" ("Hollioake" of "Adam Hollioake") or "other" ("Dutch" of
    "Netherlands"); the name's "(...)" qualifier is dropped first."""
    words, name_part = name_words(surface), entity_name_words(name)
    if not words:
        return "other"
    if words == name_part:
        return "name"
    if len(words) < len(name_part):
        if name_part[: len(words)] == words:
            return "name_start"
        if name_part[-len(words) :] == words:
            return "name_end"
    return "other"


def find_name_part_matches(words: Sequence[str], spaces: Sequence[bool], starts: NamePartIndex,
                           ends: Optional[NamePartIndex], max_length: int, k: int) -> List[Match]:
    """Every span of at most ``max_length`` tokens that starts and ends on a capitalised word (or a number) and is
    the first words of some KB entity's name (in ``starts``) or the last (in ``ends``), with ``k`` such entities
    from each (see ``NamePartIndex``) at p(e|m) = 0: candidates the names offer and the prior knows nothing of.

    A span grows away from its anchor word (rightwards from a first word, leftwards from a last word) until no name
    goes on with it: past a space, a longer span can only narrow the names. Lookups repeat across a doc ("France"
    ten times in a results table), so each surface is looked up once."""
    found: Dict[Tuple[int, int], List[int]] = {}
    n = len(words)
    for index, forward in ((starts, True), (ends, False)):
        if index is None:
            continue
        seen: Dict[str, Tuple[int, ...]] = {}
        for anchor in range(n):
            if not name_like(words[anchor]):
                continue
            for length in range(1, min(max_length, n - anchor if forward else anchor + 1) + 1):
                start, end = (anchor, anchor + length) if forward else (anchor - length + 1, anchor + 1)
                new = end - 1 if forward else start  # the token this length added
                if not name_like(words[new]):
                    continue
                surface = "".join(w + (" " if sp else "") for w, sp in zip(words[start:end], spaces[start:end]))
                rows = seen.get(surface)
                if rows is None:
                    rows = seen[surface] = index.lookup(surface, k)
                if rows:
                    span_rows = found.setdefault((start, end), [])
                    span_rows += [row for row in rows if row not in span_rows]
                elif spaces[end - 1] if forward else start > 0 and spaces[start - 1]:
                    break  # no name goes on with this span, nor with a longer one (a new word narrows them)
    return [(start, end, tuple(rows), (0.0,) * len(rows)) for (start, end), rows in sorted(found.items())]


def name_like(word: str) -> bool:
    """Whether a token can begin or end a name: capitalised, or a number."""
    return word[:1].isupper() or word[:1].isdigit()


# -- acronyms -------------------------------------------------------------------------------------------------------
# News writes many organisations by their initials alone ("AFP", "ICJ"), which a prior table built from other text
# (and every title-only KB) lacks: on ACE2004 with a swapped KB, "AFP" for Agence France-Presse is 15 of the 257
# gold mentions. An unknown all-capitals token is matched to the entities whose name's initials it spells.

MINOR_WORDS = frozenset({"a", "an", "and", "at", "de", "der", "des", "di", "du", "for", "in", "la", "le", "of", "on",
                          "the", "to", "und", "&"})
MAX_ACRONYM = 6


def acronyms(name: str) -> List[str]:
    """The initialisms a name is written as, with and without its minor words: "Agence France-Presse" → ["afp"],
    "Voice of America" → ["voa", "va"]; none for a single word or more than ``MAX_ACRONYM`` words."""
    head = unqualified(name)  # "Gainesville, Florida": the qualifier is no part of the initials
    words = [w for w in re.split(r"[\s\-/,.]+", normalize_surface(head)) if w[:1].isalpha()]
    while words and words[0] in MINOR_WORDS:  # "The Associated Press" is "AP"; "at folsom prison" no "AFP"
        words = words[1:]
    keys = []
    for kept in (words, [w for w in words if w not in MINOR_WORDS]):
        key = "".join(w[0] for w in kept)
        if 2 <= len(kept) <= MAX_ACRONYM and key.isascii() and key not in keys:
            keys.append(key)
    return keys


class AcronymIndex:
    """KB rows by the initialisms of their names (``acronyms``; people excluded), sorted in one fixed-width array
    (14 bytes an entry); among entities sharing one, the most popular (then the shortest name) first."""

    def __init__(self, kb: KnowledgeBase):
        keys: List[str] = []
        rows = array("q")
        lengths = array("q")
        for row in range(len(kb)):
            if kb.is_title(row):
                name = kb.id(row)
            elif kb[row].type == "PER":  # people go by their initials too rarely to offer them for every acronym
                continue
            else:
                name = kb[row].name
            for key in acronyms(name):
                keys.append(key)
                rows.append(row)
                lengths.append(len(name))
        key_array = numpy.array(keys, dtype=f"S{MAX_ACRONYM}")
        del keys
        row_array = numpy.frombuffer(rows, dtype="int64")
        popularity = numpy.zeros(len(kb), dtype="float32")
        for row, ent in kb.rich():
            popularity[row] = ent.popularity
        order = numpy.lexsort((numpy.frombuffer(lengths, dtype="int64"), -popularity[row_array], key_array))
        self.keys = key_array[order]
        self.rows = row_array[order]

    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, acronym: str, k: int) -> Tuple[int, ...]:
        """At most ``k`` KB rows whose name has the initials ``acronym`` (lower case), best first."""
        key = acronym.encode("ascii", "ignore")
        if not key or len(key) > MAX_ACRONYM or k < 1:
            return ()
        lo, hi = numpy.searchsorted(self.keys, key, "left"), numpy.searchsorted(self.keys, key, "right")
        return tuple(self.rows[lo : min(hi, lo + k)].tolist())


def is_acronym(word: str) -> bool:
    """Whether a token is written as an initialism: 2 to ``MAX_ACRONYM`` capital ASCII letters."""
    return 2 <= len(word) <= MAX_ACRONYM and word.isascii() and word.isalpha() and word.isupper()


def find_acronym_matches(words: Sequence[str], table: CandidateTable, index: AcronymIndex, k: int) -> List[Match]:
    """Every all-capitals token of 2 to ``MAX_ACRONYM`` letters that the candidate table does not know, with at
    most ``k`` entities whose name it abbreviates, each at the p(e|m) of a name nobody else has (1): spread
    uniformly (1/k), the reader left them unlinked (README: Out of domain)."""
    found: List[Match] = []
    seen: Dict[str, Tuple[int, ...]] = {}
    for i, word in enumerate(words):
        if not is_acronym(word):
            continue
        surface = word.lower()
        rows = seen.get(surface)
        if rows is None:
            rows = seen[surface] = () if surface in table else index.lookup(surface, k)
        if rows:
            found.append((i, i + 1, rows, (1.0,) * len(rows)))
    return found


class DocMatches:
    """The alias matches of one doc, sorted by start, for fast lookup by window."""

    def __init__(self, matches: List[Match]):
        self.matches = sorted(matches, key=lambda m: (m[0], m[1]))
        self.starts = [m[0] for m in self.matches]

    def within(self, start: int, end: int) -> List[Match]:
        """The matches lying inside tokens ``start``..``end`` (exclusive)."""
        first, last = bisect.bisect_left(self.starts, start), bisect.bisect_left(self.starts, end)
        return [m for m in self.matches[first:last] if m[1] <= end]

    def plus(self, matches: List[Match]) -> "DocMatches":
        return DocMatches(self.matches + matches) if matches else self


def window_alias_rows(matches: Sequence[DocMatches], windows: Sequence[Tuple[int, int, int]]) -> List[List[int]]:
    """Each window's alias candidates: the entities of the aliases inside it, by best p(e|m) first."""
    out = []
    for d, s, e in windows:
        best: Dict[int, float] = {}
        for _, _, rows, probs in matches[d].within(s, e):
            for row, prob in zip(rows, probs):
                if prob >= best.get(row, -1.0):
                    best[row] = prob
        out.append(sorted(best, key=lambda row: -best[row]))
    return out


def prior_features(matches: Sequence[DocMatches], windows: Sequence[Tuple[int, int, int]],
                   candidates: numpy.ndarray, window_size: int) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """What the reader sees of the alias table, as [p(e|m), is an alias] pairs:

    per (window, candidate) the best over the window's aliases of that entity (W, C, 2); per (window, candidate,
    position) the same for aliases that start (end) there (W, C, S+1, 2; position 0 is the no-answer slot).
    """
    W, C = candidates.shape
    cand = numpy.zeros((W, C, 2), dtype="float32")
    start = numpy.zeros((W, C, window_size + 1, 2), dtype="float32")
    end = numpy.zeros_like(start)
    for w, (d, s, e) in enumerate(windows):
        column = {int(r): c for c, r in enumerate(candidates[w]) if r >= 0}
        for ms, me, rows, probs in matches[d].within(s, e):
            for row, prob in zip(rows, probs):
                c = column.get(row)
                if c is None:
                    continue
                for target in (cand[w, c], start[w, c, ms - s + 1], end[w, c, me - s]):
                    target[0] = max(target[0], prob)
                    target[1] = 1.0
    return cand, start, end


def show_title_priors(priors: numpy.ndarray, start_priors: numpy.ndarray, end_priors: numpy.ndarray,
                      titled: numpy.ndarray, name_match: numpy.ndarray) -> None:
    """The [p(e|m), is an alias] features of candidates shown as title-only entities (``titled``, (W, C)), in place.

    A title-only entity is matched by its name alone (is-an-alias stays), and its p(e|m) is what the candidate table
    gives a name: 0 beside a surface the prior table knows, uniform among the names sharing a surface it does not
    (1 for almost every title). ``name_match`` picks the candidates shown in the second form, the others get 0.
    """
    titled_match, titled_zero = titled & name_match, titled & ~name_match
    for features in (priors, start_priors, end_priors):
        features[titled_zero, ..., 0] = 0.0
        features[titled_match, ..., 0] = features[titled_match, ..., 1]


# -- leave-one-out priors for training -----------------------------------------------------------------------------
# A prior table built from the training set's own anchors (AIDA's is) knows a training mention's entity, while it
# lists a test mention's for its surface only 75.4% of the time on AIDA testb (DESIGN.md). A reader trained on
# such priors learns that an entity the table does not list for the surface is never the answer. Holding out, for
# each training doc, the (surface, entity) pairs that only that doc's anchors can have put in the table shows the
# reader the case it meets at test time.

Pair = Tuple[str, int]  # (normalized surface, KB row)


def title_surfaces(name: str) -> Tuple[str, str]:
    """The surfaces a KB builds from an entity's name alone: the name, and the name without its qualifier
    (``unqualified``)."""
    return normalize_surface(name), normalize_surface(unqualified(name))


def count_pair_docs(docs_pairs: Iterable[Iterable[Pair]]) -> Dict[Pair, int]:
    """In how many training docs each (surface, entity) pair is a gold mention."""
    counts: Dict[Pair, int] = {}
    for pairs in docs_pairs:
        for pair in set(pairs):
            counts[pair] = counts.get(pair, 0) + 1
    return counts


def contiguous_folds(n_docs: int, n_folds: int) -> List[int]:
    """The fold of each of ``n_docs`` docs in corpus order: ``n_folds`` contiguous blocks of (nearly) equal size.

    Contiguous, not random: a news corpus is in time order, so a block held out from the prior table lacks the
    pairs of its own days (a new season's teams, a tournament's players), as later test text does."""
    return [i * n_folds // n_docs for i in range(n_docs)]


def held_out_golds(golds: Sequence[Tuple[int, int, int]], surfaces: Sequence[str], pair_docs: Dict[Pair, int],
                   name: Callable[[int], str], own_docs: Optional[Dict[Pair, int]] = None
                   ) -> List[Tuple[int, int, int]]:
    """The gold mentions (start, end, row) of one training doc whose pair the prior table would lack without this
    doc (``own_docs`` None) or without the docs of its fold (``own_docs``: how many of them link each pair): no
    other training doc links the surface to the entity, and the surface is not the entity's name."""
    return [(start, end, row) for (start, end, row), surface in zip(golds, surfaces)
            if row >= 0 and is_not_name(surface, name(row))
            and pair_docs.get((surface, row), 0) <= (1 if own_docs is None else own_docs.get((surface, row), 0))]


def is_not_name(surface: str, name: str) -> bool:
    """Whether a (normalized) surface is something other than the entity's own name."""
    return surface not in title_surfaces(name)


def is_name_part(surface: str, name: str) -> bool:
    """Whether a surface is the first or the last words of the entity's name (see ``name_relation``)."""
    return name_relation(surface, name) in ("name_start", "name_end")


def sample_golds(golds: Sequence[Tuple[int, int, int]], surfaces: Sequence[str], name: Callable[[int], str],
                 rate: float, rng: numpy.random.Generator,
                 eligible: Callable[[str, str], bool] = is_not_name) -> List[Tuple[int, int, int]]:
    """A random share ``rate`` of the gold mentions (start, end, row) whose surface is ``eligible`` for the
    entity's name (by default: not the name itself).

    Held out of a training doc's matches for one update, they look like the mentions of new text whose entity the
    prior table does not list for that surface (12% of AIDA testa's gold mentions, 24% of testb's, nearly all of an
    out-of-domain corpus's) while the other entities of the surface stay listed: the reader learns to link them
    from context (and, for name parts, from the name-part candidates, which are never held out) rather than follow
    the prior's first entity."""
    if rate <= 0:
        return []
    return [(start, end, row) for (start, end, row), surface in zip(golds, surfaces)
            if row >= 0 and eligible(surface, name(row)) and rng.random() < rate]


def without_pairs(matches: DocMatches, held: Sequence[Tuple[int, int, int]]) -> DocMatches:
    """``matches`` with each held-out (start, end, row) removed from the match of exactly that span (a match left
    with no entity is dropped)."""
    if not held:
        return matches
    drop: Dict[Tuple[int, int], set] = {}
    for start, end, row in held:
        drop.setdefault((start, end), set()).add(row)
    kept: List[Match] = []
    for start, end, rows, probs in matches.matches:
        gone = drop.get((start, end))
        if gone:
            pairs = [(r, p) for r, p in zip(rows, probs) if r not in gone]
            if not pairs:
                continue
            rows, probs = tuple(r for r, _ in pairs), tuple(p for _, p in pairs)
        kept.append((start, end, rows, probs))
    return DocMatches(kept)
