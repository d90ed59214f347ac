"""The entity store: everything the linker knows about entities, kept and saved together.

KB, prior (alias) table, the frozen entity encoder, the KB's base vectors and the faiss index belong to one KB:
swapping the KB (``set_kb``) re-encodes and re-indexes it with the trained encoder, and re-maps the prior table
onto it. The trainable entity adapter lives in the linker's model; the linker rebuilds the index with it
(``build_index``) whenever training has moved it.
"""

import io
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Union

import numpy
import srsly
from spacy import util
from spacy.tokens import Doc

from .aliases import AliasTable, DocMatches, Entry, build_candidate_table, expand_short_names, find_matches
from .index import EntityIndex
from .kb import KnowledgeBase, load_kb, type_bucket

if TYPE_CHECKING:
    from .module import EntityTable

# log(1 + in-links) is around 0..15: scaled to about 0..1.5, the same scale for every KB (not the KB's own max, so
# a swapped KB keeps the meaning of the feature).
POPULARITY_SCALE = 0.1
# Entity types whose last name word is no reference to them.
SHORT_NAME_EXCLUDED_TYPES = {"LOC"}


class EntityStore:
    def __init__(self, index_factory: str = "Flat", entity_batch_size: int = 128, n_alias_entities: int = 10):
        self.kb: Optional[KnowledgeBase] = None
        self.aliases: Optional[AliasTable] = None
        self.encoder = None  # EntityEncoder
        self.vectors: Optional[numpy.ndarray] = None  # base vectors of the KB, (N, H)
        self.index = EntityIndex(index_factory)
        self.entity_batch_size = entity_batch_size
        self.n_alias_entities = n_alias_entities
        self._surfaces: Optional[Dict[str, Entry]] = None
        self._table: Optional["EntityTable"] = None
        self._title_vectors: Optional[numpy.ndarray] = None

    def __len__(self) -> int:
        return 0 if self.kb is None else len(self.kb)

    def set_kb(self, kb: Union[str, Path, KnowledgeBase],
               aliases: Union[str, Path, AliasTable, None] = None) -> None:
        """Use a new KB (and prior table, else the current one re-mapped onto the new KB): encode its entities."""
        if self.encoder is None:
            raise ValueError("no entity encoder yet: initialize the pipeline or load a trained one")
        self.kb = kb if isinstance(kb, KnowledgeBase) else load_kb(kb)
        if aliases is not None:
            self.aliases = aliases if isinstance(aliases, AliasTable) else AliasTable.load(aliases)
        self.vectors = self.encoder.encode(self.kb.texts(), batch_size=self.entity_batch_size)
        self._surfaces = None
        self._table = None
        self._title_vectors = None

    @property
    def surfaces(self) -> Dict[str, Entry]:
        """Surface → (KB rows, p(e|m)) for the current KB, built on first use."""
        if self._surfaces is None:
            self._surfaces = build_candidate_table(self._require_kb(), self.aliases, self.n_alias_entities)
        return self._surfaces

    def matches(self, doc: Doc, max_length: int, short_names: bool) -> DocMatches:
        """The alias matches of a doc (spans of at most ``max_length`` tokens), with the short references to the
        entities it names in full when ``short_names`` (see ``aliases.expand_short_names``)."""
        words = [t.text for t in doc]
        spaces = [bool(t.whitespace_) for t in doc]
        matches = find_matches(words, spaces, self.surfaces, max_length)
        if short_names:
            matches = expand_short_names(words, matches, self._short_name_eligible)
        return DocMatches(matches)

    def _short_name_eligible(self, row: int) -> bool:
        """Places are not referred to by the last word of their name ("New York" is no "York")."""
        return self._require_kb()[row].type not in SHORT_NAME_EXCLUDED_TYPES

    def entity_table(self, device: object, titles: bool = False) -> "EntityTable":
        """The KB's base vectors and features as tensors on ``device`` (cached until the KB changes); with
        ``titles``, also the base vectors of the entity names alone (see ``title_vectors``)."""
        import torch

        from .module import EntityTable

        kb = self._require_kb()
        if self._table is None or self._table.base.device != torch.device(device):
            popularity = numpy.asarray([e.popularity for e in kb], dtype="float32") * POPULARITY_SCALE
            types = numpy.asarray([type_bucket(e.type) for e in kb], dtype="int64")
            self._table = EntityTable(torch.as_tensor(self.vectors, device=device),
                                      torch.as_tensor(popularity, device=device),
                                      torch.as_tensor(types, device=device), self.index)
        if titles and self._table.titles is None:
            self._table.titles = torch.as_tensor(self.title_vectors(), device=device)
        return self._table

    def title_vectors(self) -> numpy.ndarray:
        """Base vectors of the entities as a title-only KB would have them (the name alone), for training with
        title dropout. Derived from the KB and the frozen encoder on first use, so never saved; entities that are
        only a name already have theirs."""
        kb = self._require_kb()
        if self._title_vectors is None:
            vectors = self.vectors.copy()
            richer = [row for row, ent in enumerate(kb) if ent.text() != ent.name]
            if richer:
                vectors[richer] = self.encoder.encode([kb[row].name for row in richer],
                                                      batch_size=self.entity_batch_size)
            self._title_vectors = vectors
        return self._title_vectors

    def build_index(self, vectors: numpy.ndarray) -> None:
        self.index.build(vectors)

    def _require_kb(self) -> KnowledgeBase:
        if self.kb is None or self.vectors is None:
            raise ValueError("no KB: initialize the pipeline with one, or call set_kb()")
        return self.kb

    # -- serialization: every part is bytes, one file each on disk ----------------------------------------------------
    def _serializers(self) -> Dict[str, Callable[[], bytes]]:
        if self.kb is None:
            return {}
        parts = {
            "kb": lambda: srsly.msgpack_dumps(self.kb.to_jsonl()),
            "entity_vectors": lambda: _array_to_bytes(self.vectors),
            "index": self.index.to_bytes,
            "entity_encoder": lambda: srsly.msgpack_dumps(self.encoder.to_bytes()),
        }
        if self.aliases is not None:
            parts["aliases"] = lambda: srsly.msgpack_dumps(self.aliases.to_records())
        return parts

    def _deserializers(self) -> Dict[str, Callable[[bytes], None]]:
        from .encoder import EntityEncoder

        def load_kb_records(data: bytes) -> None:
            self.kb = KnowledgeBase.from_dicts(srsly.msgpack_loads(data))
            self._surfaces = self._table = self._title_vectors = None

        def load_aliases(data: bytes) -> None:
            self.aliases = AliasTable.from_records(srsly.msgpack_loads(data))
            self._surfaces = None

        def load_vectors(data: bytes) -> None:
            self.vectors = _array_from_bytes(data)
            self._table = self._title_vectors = None

        def load_encoder(data: bytes) -> None:
            self.encoder = EntityEncoder.from_bytes(srsly.msgpack_loads(data))
            self._title_vectors = None

        return {"kb": load_kb_records, "aliases": load_aliases, "entity_vectors": load_vectors,
                "index": self.index.from_bytes, "entity_encoder": load_encoder}

    def to_bytes(self) -> bytes:
        return util.to_bytes(self._serializers(), [])

    def from_bytes(self, data: bytes) -> "EntityStore":
        util.from_bytes(data, self._deserializers(), [])
        return self

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, dump in self._serializers().items():
            (path / name).write_bytes(dump())

    def from_disk(self, path: Union[str, Path]) -> "EntityStore":
        for name, load in self._deserializers().items():
            if (Path(path) / name).exists():
                load((Path(path) / name).read_bytes())
        return self


def _array_to_bytes(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array_from_bytes(data: bytes) -> numpy.ndarray:
    return numpy.load(io.BytesIO(data), allow_pickle=False)
