"""The knowledge base: the entities a document can be linked to.

Two file formats are read: JSONL with one entity a line (``id`` and ``name`` required; ``description``,
``aliases``, ``popularity`` and ``type`` optional) and plain text with one title a line (optionally gzipped),
for title-only KBs such as the list of all Wikipedia page names. Errors name the file and the line.
"""

import gzip
import io
import json
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

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


class KnowledgeBase:
    """An ordered list of entities; an entity's row is its position in the KB and in the entity index."""

    def __init__(self, entities: Iterable[Entity]):
        self.entities: List[Entity] = list(entities)
        self._rows: Dict[str, int] = {}
        for row, ent in enumerate(self.entities):
            if ent.id in self._rows:
                raise KBError(f"duplicate entity id {ent.id!r} (rows {self._rows[ent.id]} and {row})")
            self._rows[ent.id] = row
        self._folded: Optional[Dict[str, int]] = None

    def __len__(self) -> int:
        return len(self.entities)

    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self._rows

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.entities)

    def __getitem__(self, row: int) -> Entity:
        return self.entities[row]

    def row(self, entity_id: str) -> Optional[int]:
        """The row of an exact id ("AYR" and "Ayr" are two entities)."""
        return self._rows.get(entity_id)

    def resolve(self, entity_id: str) -> Optional[int]:
        """The row of an id from another source: the exact id, else an entity whose id *is* its folded form.

        Title-only KBs (such as the Wikipedia title list) store folded ids, so "Barack_Obama" finds "barack obama"
        there; a folded id never matches a cased one, so "AYR" does not find "Ayr". Use it where a corpus or prior
        table is mapped onto a KB (convert, KB loading), never when scoring.
        """
        row = self._rows.get(entity_id)
        if row is None:
            if self._folded is None:
                self._folded = {ent.id: i for i, ent in enumerate(self.entities) if normalize_id(ent.id) == ent.id}
            row = self._folded.get(normalize_id(entity_id))
        return row

    @property
    def ids(self) -> List[str]:
        return [e.id for e in self.entities]

    def texts(self) -> List[str]:
        return [e.text() for e in self.entities]

    def to_jsonl(self) -> List[Dict]:
        return [e.to_dict() for e in self.entities]

    def to_disk(self, path: Union[str, Path]) -> None:
        srsly.write_jsonl(path, self.to_jsonl())

    @classmethod
    def from_dicts(cls, records: Iterable[Dict], source: str = "<records>") -> "KnowledgeBase":
        return cls(_parse_record(rec, source, i) for i, rec in enumerate(records, start=1))


def load_kb(path: Union[str, Path]) -> KnowledgeBase:
    """Read a KB from JSONL (``.jsonl``/``.json``, optionally ``.gz``) or a plain title list (anything else)."""
    path = Path(path)
    if not path.exists():
        raise KBError(f"{path}: no such KB file")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    is_jsonl = bool(suffixes) and suffixes[-1] in (".jsonl", ".json")
    entities: List[Entity] = []
    first_line: Dict[str, int] = {}
    repeated_titles = 0
    for line_no, ent in _read_jsonl(path) if is_jsonl else _read_titles(path):
        if ent.id in first_line and not is_jsonl:
            # A title list is a set of names: a repeated line (e.g. after case folding) is the same entity.
            repeated_titles += 1
            continue
        if ent.id in first_line:
            raise KBError(f"{path}:{line_no}: duplicate entity id {ent.id!r} (first on line {first_line[ent.id]})")
        first_line[ent.id] = line_no
        entities.append(ent)
    kb = KnowledgeBase(entities)
    if not len(kb):
        raise KBError(f"{path}: the KB is empty")
    if repeated_titles:
        msg.warn(f"{path}: skipped {repeated_titles} repeated titles")
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


def _read_titles(path: Path) -> Iterator[Tuple[int, Entity]]:
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            title = line.strip()
            if title:
                yield line_no, Entity(id=title, name=title)


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
