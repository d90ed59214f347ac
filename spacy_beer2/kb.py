"""The knowledge base: the entities a document can be linked to.

Two file formats are read: JSONL with one entity a line (``id`` and ``name`` required; ``description``,
``aliases``, ``popularity`` and ``type`` optional) and plain text with one title a line (optionally gzipped),
for title-only KBs such as the list of all Wikipedia page names. Errors name the file and the line.
"""

import bisect
import gzip
import io
import json
import unicodedata
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from wasabi import msg


# How the coarse NER types read in an entity's text; any other type is read as its lower-cased name.
TYPE_WORDS = {"PER": "person", "LOC": "location", "ORG": "organization", "MISC": "miscellaneous"}

# Entity types reach the reader as hashed buckets (0 = no type), so a KB with types never seen in training works.
TYPE_BUCKETS = 64


def type_bucket(entity_type: Optional[str]) -> int:
    """A stable bucket in 1..TYPE_BUCKETS-1 for a type name; 0 when the entity has no type."""
    return 0 if not entity_type else 1 + zlib.crc32(entity_type.encode("utf8")) % (TYPE_BUCKETS - 1)


class KBError(ValueError):
    """A knowledge-base file that cannot be read, with the file and line at fault."""


@dataclass
class Entity:
    id: str
    name: str
    description: str = ""
    aliases: List[str] = field(default_factory=list)
    popularity: float = 0.0
    type: Optional[str] = None

    def text(self, max_aliases: int = 8) -> str:
        """What the entity encoder reads: name, type, a few aliases, then the description (when present)."""
        aliases = [a for a in self.aliases if a != self.name][:max_aliases]
        parts = [self.name]
        if self.type:
            parts.append(TYPE_WORDS.get(self.type, self.type.lower()))
        if aliases:
            parts.append(" , ".join(aliases))
        if self.description:
            parts.append(self.description)
        return " ; ".join(parts)

    @property
    def is_title(self) -> bool:
        """Nothing but a title: the name is the id and there is no other field (a line of a title list)."""
        return (self.name == self.id and not self.description and not self.aliases and not self.popularity
                and self.type is None)

    def to_dict(self) -> Dict:
        data = {"id": self.id, "name": self.name, "description": self.description, "aliases": self.aliases,
                "popularity": self.popularity}
        if self.type is not None:
            data["type"] = self.type
        return data


def normalize_id(entity_id: str) -> str:
    """Case- and accent-insensitive form of an entity id, for matching ids across KB sources."""
    folded = unicodedata.normalize("NFKD", entity_id).encode("ascii", "ignore").decode("ascii")
    return " ".join(folded.replace("_", " ").lower().split())


class StringColumn:
    """Many strings in one UTF-8 buffer with offsets: about 25 bytes per Wikipedia title instead of about 75 for a
    Python str, and one allocation instead of millions."""

    def __init__(self, data: bytes = b"", offsets: Optional[numpy.ndarray] = None):
        self.data = data
        self.offsets = numpy.zeros(1, dtype="int64") if offsets is None else offsets

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> "StringColumn":
        buffer = bytearray()
        ends = array("q")
        for text in strings:
            buffer += text.encode("utf8")
            ends.append(len(buffer))
        offsets = numpy.zeros(len(ends) + 1, dtype="int64")
        offsets[1:] = numpy.frombuffer(ends, dtype="int64") if len(ends) else []
        return cls(bytes(buffer), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.data[self.offsets[i] : self.offsets[i + 1]].decode("utf8")

    def __iter__(self) -> Iterator[str]:
        data, offsets = self.data, self.offsets.tolist()
        for i in range(len(offsets) - 1):
            yield data[offsets[i] : offsets[i + 1]].decode("utf8")

    def select(self, keep: numpy.ndarray) -> "StringColumn":
        return StringColumn.from_strings(text for text, kept in zip(self, keep.tolist()) if kept)


class HashBitmap:
    """A set of hashes as one bitmap, about 16 bits a key: it may answer yes wrongly (about 6% of misses pass) but
    never no wrongly, so it turns most misses away in front of an exact lookup. Python's string hash is salted per
    process, so a bitmap of string hashes is built at load time, never saved."""

    MAX_BITS = 1 << 26  # 8 MB: a miss passes for about 8% of lookups at 5.9M strings

    def __init__(self, hashes: numpy.ndarray):
        # a power of two, to mask with
        self.bits = min(self.MAX_BITS, 1 << max(10, int(16 * len(hashes)).bit_length()))
        bits = hashes & (self.bits - 1)
        bitmap = numpy.zeros(self.bits // 8, dtype="uint8")
        numpy.bitwise_or.at(bitmap, bits >> 3, (1 << (bits & 7)).astype("uint8"))
        self.bitmap = bitmap.tobytes()  # bytes: indexed several times faster than a numpy array

    def may_contain(self, h: int) -> bool:
        bit = h & (self.bits - 1)
        return bool((self.bitmap[bit >> 3] >> (bit & 7)) & 1)


class StringIndex:
    """Exact lookup of strings in a StringColumn by sorted hashes (16 bytes per string, against about 100 for a dict
    entry), with a ``HashBitmap`` that turns most misses away before the binary search; built at load time, never
    saved (Python's string hash is salted per process)."""

    def __init__(self, column: StringColumn, keys: Optional[Iterable[str]] = None,
                 rows: Optional[Sequence[int]] = None):
        """Index ``keys`` of the column's ``rows`` (default: every row, keyed by its own string)."""
        self.column = column
        rows_array = numpy.arange(len(column)) if rows is None else numpy.asarray(rows, dtype="int64")
        keys = (column[r] for r in rows_array.tolist()) if keys is None and rows is not None else keys
        hashes = numpy.fromiter((hash(k) for k in (column if keys is None else keys)), dtype="int64",
                                count=len(rows_array))
        order = numpy.argsort(hashes, kind="stable")
        # array and bytes: Python-level lookups index them several times faster than numpy arrays
        self.rows_by_hash = array("q", rows_array[order].tobytes())
        self.hashes = array("q", hashes[order].tobytes())
        self.filter = HashBitmap(hashes)

    def __len__(self) -> int:
        return len(self.hashes)

    def rows(self, key: str, key_of: Optional[Callable[[str], str]] = None) -> List[int]:
        """Rows whose key equals ``key`` (``key_of`` maps a column string to its key when the keys were derived)."""
        h = hash(key)
        if not self.filter.may_contain(h):
            return []
        hashes = self.hashes
        found = []
        for i in range(bisect.bisect_left(hashes, h), len(hashes)):
            if hashes[i] != h:
                break
            row = self.rows_by_hash[i]
            text = self.column[row]
            if (text if key_of is None else key_of(text)) == key:
                found.append(row)
        return found

    def duplicates(self) -> List[Tuple[int, int]]:
        """(first row, later row) of every string that occurs again (by the column's strings)."""
        hashes = numpy.frombuffer(self.hashes, dtype="int64")
        same = numpy.flatnonzero(hashes[1:] == hashes[:-1])
        out = []
        for i in same.tolist():
            a, b = int(self.rows_by_hash[i]), int(self.rows_by_hash[i + 1])
            if self.column[a] == self.column[b]:
                out.append((min(a, b), max(a, b)))
        return out


class KnowledgeBase:
    """An ordered list of entities; an entity's row is its position in the KB and in the entity index.

    Stored column-wise, so that a Wikipedia-sized KB of titles fits in a few hundred MB: the ids in one
    StringColumn with a hash index, and the fields beyond the id only for the entities that have them.
    """

    def __init__(self, entities: Iterable[Entity]):
        extra: Dict[int, Entity] = {}

        def ids() -> Iterator[str]:
            for row, ent in enumerate(entities):
                if not ent.is_title:
                    extra[row] = ent
                yield ent.id

        self._init(StringColumn.from_strings(ids()), extra)
        for first, later in self._index.duplicates():
            raise KBError(f"duplicate entity id {self._ids[first]!r} (rows {first} and {later})")

    def _init(self, ids: StringColumn, extra: Dict[int, Entity]) -> None:
        self._ids = ids
        self._extra = extra
        self._index = StringIndex(ids)

    @classmethod
    def _from_columns(cls, ids: StringColumn, extra: Dict[int, Entity]) -> "KnowledgeBase":
        kb = cls.__new__(cls)
        kb._init(ids, extra)
        return kb

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entity_id: str) -> bool:
        return self.row(entity_id) is not None

    def __iter__(self) -> Iterator[Entity]:
        for row, entity_id in enumerate(self._ids):
            yield self._extra.get(row) or Entity(entity_id, entity_id)

    def __getitem__(self, row: int) -> Entity:
        if row < 0 or row >= len(self):
            raise IndexError(f"no KB row {row} (the KB has {len(self)} entities)")
        return self._extra.get(row) or Entity(self._ids[row], self._ids[row])

    def id(self, row: int) -> str:
        return self._ids[row]

    def row(self, entity_id: str) -> Optional[int]:
        """The row of an exact id ("AYR" and "Ayr" are two entities)."""
        rows = self._index.rows(entity_id)
        return rows[0] if rows else None

    def resolve(self, entity_id: str) -> Optional[int]:
        """The row of an id from another source: the exact id, else an entity whose id *is* its folded form.

        Title-only KBs (such as the Wikipedia title list) store folded ids, so "Barack_Obama" finds "barack obama"
        there; a folded id never matches a cased one, so "AYR" does not find "Ayr". Use it where a corpus or prior
        table is mapped onto a KB (convert, KB loading), never when scoring.
        """
        row = self.row(entity_id)
        if row is None:
            folded = normalize_id(entity_id)
            if folded != entity_id:
                row = self.row(folded)  # its id equals a folded form, so it is a folded-id entity
        return row

    def is_title(self, row: int) -> bool:
        """Whether the entity at ``row`` is nothing but a title (see ``Entity.is_title``)."""
        return row not in self._extra

    def title_mask(self) -> numpy.ndarray:
        """A boolean per row: whether the entity is nothing but a title (vectorized ``is_title``)."""
        mask = numpy.ones(len(self), dtype=bool)
        mask[numpy.fromiter(self._extra.keys(), dtype="int64", count=len(self._extra))] = False
        return mask

    def rich(self) -> Iterator[Tuple[int, Entity]]:
        """(row, entity) of the entities that are more than a title, in row order."""
        return iter(sorted(self._extra.items()))

    @property
    def ids(self) -> List[str]:
        return list(self._ids)

    def texts(self, start: int = 0, end: Optional[int] = None) -> List[str]:
        """What the entity encoder reads for rows ``start``..``end`` (default: all)."""
        end = len(self) if end is None else min(end, len(self))
        return [self[row].text() for row in range(start, end)]

    def to_jsonl(self) -> List[Dict]:
        return [e.to_dict() for e in self]

    def to_disk(self, path: Union[str, Path]) -> None:
        srsly.write_jsonl(path, (e.to_dict() for e in self))

    def to_msgpack(self) -> bytes:
        """Compact serialization: the id column as bytes, the richer entities as dicts."""
        return srsly.msgpack_dumps({"ids": self._ids.data, "offsets": self._ids.offsets.tobytes(),
                                    "extra": [[row, ent.to_dict()] for row, ent in self.rich()]})

    @classmethod
    def from_msgpack(cls, data: bytes) -> "KnowledgeBase":
        """Read ``to_msgpack`` output (or the list of entity dicts that earlier versions saved)."""
        content = srsly.msgpack_loads(data)
        if isinstance(content, list):
            return cls.from_dicts(content)
        extra = {int(row): _parse_record(record, "<saved KB>", int(row) + 1) for row, record in content["extra"]}
        ids = StringColumn(content["ids"], numpy.frombuffer(content["offsets"], dtype="int64").copy())
        return cls._from_columns(ids, extra)

    @classmethod
    def from_dicts(cls, records: Iterable[Dict], source: str = "<records>") -> "KnowledgeBase":
        return cls(_parse_record(rec, source, i) for i, rec in enumerate(records, start=1))


def add_titles(kb: KnowledgeBase, path: Union[str, Path]) -> KnowledgeBase:
    """``kb`` followed by every title of a title list (e.g. all Wikipedia page names) that is not already one of
    its entities, exactly or in folded form: the way to a Wikipedia-sized KB. The list is streamed."""
    path = Path(path)
    if not path.exists():
        raise KBError(f"{path}: no such title list")
    folded = {normalize_id(entity_id) for entity_id in kb._ids}
    added = 0

    def ids() -> Iterator[str]:
        nonlocal added
        yield from kb._ids
        for _, title in _read_titles(path):
            if title not in folded and kb.row(title) is None:
                added += 1
                yield title

    column = StringColumn.from_strings(ids())
    merged = KnowledgeBase._from_columns(column, dict(kb._extra))
    duplicates = [later for first, later in merged._index.duplicates() if later >= len(kb)]  # repeated titles
    if duplicates:
        keep = numpy.ones(len(column), dtype=bool)
        keep[duplicates] = False
        merged = KnowledgeBase._from_columns(column.select(keep), dict(kb._extra))
    msg.info(f"{path}: {added - len(duplicates)} titles added to {len(kb)} entities")
    return merged


def load_kb(path: Union[str, Path]) -> KnowledgeBase:
    """Read a KB from JSONL (``.jsonl``/``.json``, optionally ``.gz``) or a plain title list (anything else)."""
    path = Path(path)
    if not path.exists():
        raise KBError(f"{path}: no such KB file")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    is_jsonl = bool(suffixes) and suffixes[-1] in (".jsonl", ".json")
    lines = array("q")
    extra: Dict[int, Entity] = {}

    def ids() -> Iterator[str]:
        if not is_jsonl:
            for line_no, title in _read_titles(path):
                lines.append(line_no)
                yield title
            return
        for line_no, ent in _read_jsonl(path):
            if not ent.is_title:
                extra[len(lines)] = ent
            lines.append(line_no)
            yield ent.id

    column = StringColumn.from_strings(ids())
    if not len(column):
        raise KBError(f"{path}: the KB is empty")
    kb = KnowledgeBase._from_columns(column, extra)
    duplicates = kb._index.duplicates()
    if duplicates and is_jsonl:
        first, later = min(duplicates, key=lambda pair: pair[1])
        raise KBError(f"{path}:{lines[later]}: duplicate entity id {column[first]!r} (first on line {lines[first]})")
    if duplicates:
        # A title list is a set of names: a repeated line (e.g. after case folding) is the same entity.
        keep = numpy.ones(len(column), dtype=bool)
        keep[[later for _, later in duplicates]] = False
        kb = KnowledgeBase._from_columns(column.select(keep), {})
        msg.warn(f"{path}: skipped {len(duplicates)} repeated titles")
    return kb


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf8")
    return open(path, encoding="utf8")


def read_jsonl_records(path: Path) -> Iterator[Tuple[int, object]]:
    """(line number, parsed JSON) of every non-blank line of a (gzipped) JSONL KB resource; KBError with file and
    line for invalid JSON."""
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                raise KBError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None


def _read_jsonl(path: Path) -> Iterator[Tuple[int, Entity]]:
    for line_no, record in read_jsonl_records(path):
        yield line_no, _parse_record(record, str(path), line_no)


def _read_titles(path: Path) -> Iterator[Tuple[int, str]]:
    with _open_text(path) as f:
        line_no = 0
        try:
            for line_no, line in enumerate(f, start=1):
                title = line.strip()
                if title:
                    yield line_no, title
        except UnicodeDecodeError:
            raise KBError(f"{path}:{line_no + 1}: not UTF-8 text (a title list has one title a line)") from None


def _parse_record(record: object, source: str, line_no: int) -> Entity:
    where = f"{source}:{line_no}"
    if not isinstance(record, dict):
        raise KBError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in ("id", "name"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise KBError(f"{where}: field {key!r} must be a non-empty string")
    description = record.get("description") or ""
    aliases = record.get("aliases") or []
    popularity = record.get("popularity", 0.0)
    ent_type = record.get("type")
    if not isinstance(description, str):
        raise KBError(f"{where}: field 'description' must be a string")
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise KBError(f"{where}: field 'aliases' must be a list of strings")
    if isinstance(popularity, bool) or not isinstance(popularity, (int, float)):
        raise KBError(f"{where}: field 'popularity' must be a number")
    if ent_type is not None and (not isinstance(ent_type, str) or not ent_type):
        raise KBError(f"{where}: field 'type' must be a non-empty string")
    return Entity(id=record["id"], name=record["name"], description=description, aliases=list(aliases),
                  popularity=float(popularity), type=ent_type)
