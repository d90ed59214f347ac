"""The entity store: everything the linker knows about entities, kept and saved together.

KB, prior (alias) table, the frozen entity encoder, the KB's base vectors and the faiss index belong to one KB:
swapping the KB (``set_kb``) re-encodes and re-indexes it with the trained encoder, and re-maps the prior table
onto it. The trainable entity adapter lives in the linker's model; the linker rebuilds the index with it
(``build_index``) whenever training has moved it.
"""

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.attrs import ORTH, SPACY
from spacy.tokens import Doc

from .aliases import (AcronymIndex, AliasTable, CandidateTable, DocMatches, Match, NamePartIndex,
                      build_candidate_table, expand_short_names, find_acronym_matches, find_matches,
                      find_name_part_matches)
from .index import EntityIndex
from .kb import KnowledgeBase, load_kb, type_bucket
from .name_evidence import NameKey, name_keys

if TYPE_CHECKING:
    from .encoder import EntityEncoder
    from .module import EntityTable

# log(1 + in-links) is around 0..15: scaled to about 0..1.5, the same scale for every KB (not the KB's own max, so
# a swapped KB keeps the meaning of the feature).
POPULARITY_SCALE = 0.1
# Saved vectors larger than this are memory-mapped at load (a Wikipedia-sized KB), smaller ones read into memory.
MMAP_BYTES = 1 << 29
# The name keys of this many entities are kept (see EntityStore.name_keys); a long-running process over a
# Wikipedia-sized KB starts over rather than grow without bound.
NAME_KEY_CACHE = 1 << 18
# Entity types whose last name word is no reference to them.
SHORT_NAME_EXCLUDED_TYPES = {"LOC"}


TokenTexts = Tuple[List[str], List[bool]]


def token_texts(doc: Doc) -> TokenTexts:
    """The doc's token texts and whether a space follows each, read once per doc for every kind of match (from one
    array of orth ids: no Token object per token)."""
    strings = doc.vocab.strings
    rows = doc.to_array([ORTH, SPACY]).tolist() if len(doc) else []
    return [strings[orth] for orth, _ in rows], [bool(space) for _, space in rows]


class EntityStore:
    def __init__(self, index_factory: str = "Flat", entity_batch_size: int = 128, n_alias_entities: int = 10,
                 index_params: str = "", impute_types: bool = True, impute_title_types: bool = False,
                 encode_bfloat16: bool = False):
        self.kb: Optional[KnowledgeBase] = None
        self.aliases: Optional[AliasTable] = None
        self._encoder = None  # EntityEncoder
        self._encoder_bytes: Optional[bytes] = None  # as saved, until first use
        # base vectors of the KB, (N, H): float32 in memory, or float16 memory-mapped for a KB encoded in shards
        self.vectors: Optional[numpy.ndarray] = None
        self.index = EntityIndex(index_factory, index_params)
        self.entity_batch_size = entity_batch_size
        self.encode_bfloat16 = encode_bfloat16
        self.n_alias_entities = n_alias_entities
        self._surfaces: Optional[CandidateTable] = None
        self._name_parts: Optional[Tuple[NamePartIndex, NamePartIndex]] = None
        self._acronyms: Optional[AcronymIndex] = None
        self._name_keys: Dict[int, Tuple[Tuple[int, NameKey], ...]] = {}
        self._table: Optional["EntityTable"] = None
        self._title_vectors: Optional[numpy.ndarray] = None
        self.impute_types = impute_types
        self.impute_title_types = impute_title_types
        # type buckets: the KB's, and those imputed so far for untyped entities (0: not yet, or a title; see
        # impute_types_of)
        self._imputed: Optional[numpy.ndarray] = None
        self._imputer = None  # TypeImputer over the KB's typed entities, built on first use
        self._titles: Optional[numpy.ndarray] = None  # whether each entity is only a title (KB.title_mask)

    def __len__(self) -> int:
        return 0 if self.kb is None else len(self.kb)

    @property
    def encoder(self) -> Optional["EntityEncoder"]:
        """The entity encoder (a copy of the shared transformer at initialization). Only a new KB or title vectors
        need it, never linking: a loaded pipeline keeps its bytes and builds it on first use (a second transformer
        less to build and hold in memory at ``spacy.load``)."""
        if self._encoder is None and self._encoder_bytes is not None:
            from .encoder import EntityEncoder

            self._encoder = EntityEncoder.from_bytes(srsly.msgpack_loads(self._encoder_bytes))
            self._encoder_bytes = None
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: Optional["EntityEncoder"]) -> None:
        self._encoder, self._encoder_bytes = encoder, None

    def set_kb(self, kb: Union[str, Path, KnowledgeBase], aliases: Union[str, Path, AliasTable, None] = None,
               work_dir: Union[str, Path, None] = None) -> None:
        """Use a new KB (and prior table, else the current one re-mapped onto the new KB): encode its entities.

        With ``work_dir``, the KB is encoded in shards into a float16 file there, memory-mapped: memory stays
        bounded whatever the KB's size, and a rerun after an interruption resumes from the shards already done
        (see ``encode_in_shards``)."""
        if self.encoder is None:
            raise ValueError("no entity encoder yet: initialize the pipeline or load a trained one")
        self.kb = kb if isinstance(kb, KnowledgeBase) else load_kb(kb)
        if aliases is not None:
            self.aliases = aliases if isinstance(aliases, AliasTable) else AliasTable.load(aliases)
        if work_dir is None:
            self.vectors = self.encoder.encode(self.kb.texts(), batch_size=self.entity_batch_size,
                                               bfloat16=self.encode_bfloat16)
        else:
            self.vectors = encode_in_shards(self.encoder, self.kb, Path(work_dir), self.entity_batch_size,
                                            bfloat16=self.encode_bfloat16)
        self._surfaces = self._name_parts = self._acronyms = None
        self._name_keys = {}
        self._table = None
        self._title_vectors = None
        self._imputed = self._imputer = self._titles = None

    @property
    def surfaces(self) -> CandidateTable:
        """Surface → (KB rows, p(e|m)) for the current KB, built on first use."""
        if self._surfaces is None:
            self._surfaces = build_candidate_table(self._require_kb(), self.aliases, self.n_alias_entities)
        return self._surfaces

    def matches(self, words: List[str], spaces: List[bool], max_length: int, short_names: bool) -> DocMatches:
        """The alias matches of a doc's tokens (``token_texts``; spans of at most ``max_length`` tokens), with the
        short references to the entities it names in full when ``short_names`` (see ``aliases.expand_short_names``)."""
        matches = find_matches(words, spaces, self.surfaces, max_length)
        if short_names:
            matches = expand_short_names(words, matches, self._short_name_eligible)
        return DocMatches(matches)

    def name_part_matches(self, words: List[str], spaces: List[bool], max_length: int, k: int) -> List[Match]:
        """The doc's spans that begin or end KB names, each with ``k`` of those entities from either end (see
        ``aliases.find_name_part_matches``); the indexes of sorted names are built on first use."""
        if k < 1 or not words:
            return []
        if self._name_parts is None:
            kb = self._require_kb()
            self._name_parts = (NamePartIndex(kb), NamePartIndex(kb, from_end=True))
        return find_name_part_matches(words, spaces, *self._name_parts, max_length, k)

    def acronym_matches(self, words: List[str], k: int) -> List[Match]:
        """The doc's all-capitals tokens unknown to the candidate table that spell the initials of KB names, each with
        ``k`` of those entities (see ``aliases.find_acronym_matches``); the index is built on first use."""
        if k < 1 or not words:
            return []
        if self._acronyms is None:
            self._acronyms = AcronymIndex(self._require_kb())
        return find_acronym_matches(words, self.surfaces, self._acronyms, k)

    def name_keys(self, row: int) -> Tuple[Tuple[int, NameKey], ...]:
        """The (relation, words) under which a span names entity ``row`` (``name_evidence.name_keys``), cached."""
        keys = self._name_keys.get(row)
        if keys is None:
            kb = self._require_kb()
            if len(self._name_keys) >= NAME_KEY_CACHE:
                self._name_keys = {}
            keys = self._name_keys[row] = name_keys(kb.id(row) if kb.is_title(row) else kb[row].name)
        return keys

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
            popularity = numpy.zeros(len(kb), dtype="float32")
            for row, ent in kb.rich():  # a title has none
                popularity[row] = ent.popularity * POPULARITY_SCALE
            types = self.type_buckets()
            with warnings.catch_warnings():  # memory-mapped vectors are read-only, and only read
                warnings.filterwarnings("ignore", message=".*not writable.*")
                base = torch.as_tensor(self.vectors, device=device)
            self._table = EntityTable(base,
                                      torch.as_tensor(popularity, device=device),
                                      torch.as_tensor(types, device=device), self.index,
                                      is_title=self._title_mask(), name_keys=self.name_keys)
        if titles and self._table.titles is None:
            self.encoder.to(device)  # loaded from disk (a resumed training), the encoder is on the CPU
            self._table.titles = torch.as_tensor(self.title_vectors(), device=device)
        return self._table

    def type_buckets(self) -> numpy.ndarray:
        """Each entity's type bucket: its KB type; with ``impute_types``, an untyped entity's imputed one once
        ``impute_types_of`` has seen it (0 until then), saved with the KB."""
        kb = self._require_kb()
        if self.impute_types and self._imputed is not None and len(self._imputed) == len(kb):
            return self._imputed
        buckets = self._kb_type_buckets()
        if self.impute_types:
            self._imputed = buckets
        return buckets

    def _kb_type_buckets(self) -> numpy.ndarray:
        buckets = numpy.zeros(len(self._require_kb()), dtype="int64")
        for row, ent in self._require_kb().rich():
            buckets[row] = type_bucket(ent.type)
        return buckets

    def impute_types_of(self, rows: numpy.ndarray) -> None:
        """With ``impute_types``, impute the types of the untyped entities among ``rows`` (KB rows, -1 ignored)
        that have none yet, from their nearest typed entities (see ``type_imputation.py``), here and in the entity
        table. Called on each batch's candidates before the reader sees them: only the entities a reader meets pay
        for the search (for the AIDA KB + 5.9M Wikipedia titles, searching all would take half an hour).

        Title-only entities keep no type unless ``impute_title_types``: ``title_dropout`` trains the reader on
        them exactly as they are (the name's vector, no type, no popularity), and out of domain, with a KB of a few
        hundred thousand entities, imputing their types cost 4 to 9 points of EL recall. With millions of titles
        (every first name and common word is one, with p(e|m) = 1) a type is what keeps the reader from linking
        them all: testb with the 5.9M-entity KB fell from 71.0 to 48.4 EL F1 without it."""
        if not self.impute_types:
            return
        buckets = self.type_buckets()
        rows = numpy.unique(rows[rows >= 0])
        pending = rows[buckets[rows] == 0]
        if not self.impute_title_types:
            pending = pending[~self._title_mask()[pending]]
        if not len(pending):
            return
        if self._imputer is None:
            from .type_imputation import TypeImputer

            self._imputer = TypeImputer(self.vectors, self._kb_type_buckets())
        imputed = self._imputer(pending)
        buckets[pending] = imputed
        if self._table is not None:
            import torch

            device = self._table.types.device
            self._table.types[torch.as_tensor(pending, device=device)] = torch.as_tensor(imputed, device=device)

    def _title_mask(self) -> numpy.ndarray:
        if self._titles is None or len(self._titles) != len(self._require_kb()):
            self._titles = self._require_kb().title_mask()
        return self._titles

    def title_vectors(self) -> numpy.ndarray:
        """Base vectors of the entities as a title-only KB would have them (the name alone), for training with
        title dropout. Derived from the KB and the frozen encoder on first use, so never saved; entities that are
        only a name already have theirs."""
        kb = self._require_kb()
        if self._title_vectors is None:
            vectors = self.vectors.copy()
            richer = [row for row, ent in kb.rich() if ent.text() != ent.name]
            if richer:
                vectors[richer] = self.encoder.encode([kb[row].name for row in richer],
                                                      batch_size=self.entity_batch_size,
                                                      bfloat16=self.encode_bfloat16)
            self._title_vectors = vectors
        return self._title_vectors

    def build_index(self, project: Callable[[numpy.ndarray], numpy.ndarray]) -> None:
        """Index ``project(base vectors)`` of every KB row (the linker's entity adapter), a batch at a time."""
        vectors = self._require_vectors()
        self.index.build_from(lambda rows: project(vectors[rows]), len(vectors), self.encoder.width)

    def _require_vectors(self) -> numpy.ndarray:
        self._require_kb()
        return self.vectors

    def _require_kb(self) -> KnowledgeBase:
        if self.kb is None or self.vectors is None:
            raise ValueError("no KB: initialize the pipeline with one, or call set_kb()")
        return self.kb

    # -- serialization: every part is bytes, one file each on disk ----------------------------------------------------
    def _serializers(self) -> Dict[str, Callable[[], bytes]]:
        if self.kb is None:
            return {}
        parts = {
            "kb": self.kb.to_msgpack,
            "entity_vectors": lambda: _array_to_bytes(self.vectors),
            "index": self.index.to_bytes,
            "entity_encoder": lambda: self._encoder_bytes or srsly.msgpack_dumps(self.encoder.to_bytes()),
        }
        if self.aliases is not None:
            parts["aliases"] = lambda: srsly.msgpack_dumps(self.aliases.to_records())
        if self._imputed is not None:
            parts["entity_types"] = lambda: _array_to_bytes(self._imputed)
        return parts

    def _deserializers(self) -> Dict[str, Callable[[bytes], None]]:
        def load_kb_records(data: bytes) -> None:
            self.kb = KnowledgeBase.from_msgpack(data)
            self._surfaces = self._name_parts = self._acronyms = None
            self._name_keys = {}
            self._table = self._title_vectors = self._imputed = None
            self._imputer = self._titles = None

        def load_aliases(data: bytes) -> None:
            self.aliases = AliasTable.from_records(srsly.msgpack_loads(data))
            self._surfaces = None

        def load_vectors(data: bytes) -> None:
            self.vectors = _array_from_bytes(data)
            self._table = self._title_vectors = self._imputer = None

        def load_types(data: bytes) -> None:
            self._imputed = _array_from_bytes(data)
            if not self.impute_title_types and self.kb is not None and len(self._imputed) == len(self.kb):
                self._imputed[self._title_mask()] = 0  # (kb is read first) imputed before v0.7: see impute_types_of
            self._table = None

        def load_encoder(data: bytes) -> None:
            self._encoder, self._encoder_bytes = None, data
            self._title_vectors = None

        return {"kb": load_kb_records, "aliases": load_aliases, "entity_vectors": load_vectors,
                "entity_types": load_types, "index": self.index.from_bytes, "entity_encoder": load_encoder}

    def to_bytes(self) -> bytes:
        return util.to_bytes(self._serializers(), [])

    def from_bytes(self, data: bytes) -> "EntityStore":
        util.from_bytes(data, self._deserializers(), [])
        return self

    def to_disk(self, path: Union[str, Path]) -> None:
        """One file per part; the vectors as a .npy file and the index as a faiss file, written without a copy in
        memory, so that a Wikipedia-sized KB saves in bounded memory."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, dump in self._serializers().items():
            if name == "entity_vectors":
                with open(path / name, "wb") as f:
                    numpy.save(f, self.vectors, allow_pickle=False)
            elif name == "index":
                self.index.to_disk(path / name)
            else:
                (path / name).write_bytes(dump())

    def from_disk(self, path: Union[str, Path]) -> "EntityStore":
        """Load what ``to_disk`` saved; vectors of more than ``MMAP_BYTES`` are memory-mapped, not read."""
        for name, load in self._deserializers().items():
            part = Path(path) / name
            if not part.exists():
                continue
            if name == "entity_vectors":
                mmap = "r" if part.stat().st_size > MMAP_BYTES else None
                self.vectors = numpy.load(part, mmap_mode=mmap, allow_pickle=False)
                self._table = self._title_vectors = None
            elif name == "index":
                self.index.from_disk(part)
            else:
                load(part.read_bytes())
        return self


def encode_in_shards(encoder: "EntityEncoder", kb: KnowledgeBase, work_dir: Path, batch_size: int,
                     shard_size: int = 65_536, bfloat16: bool = False) -> numpy.ndarray:
    """The KB's base vectors, encoded ``shard_size`` entities at a time into ``work_dir/vectors.npy`` (float16,
    memory-mapped), with a progress bar. Each finished shard is recorded in ``work_dir/progress.json``, so an
    interrupted run resumes where it stopped; a work dir made for another KB or encoder is refused."""
    import srsly
    from tqdm import tqdm

    work_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = {"entities": len(kb), "width": encoder.width, "first": kb.id(0), "last": kb.id(len(kb) - 1),
                   "shard_size": shard_size}
    progress_file, vectors_file = work_dir / "progress.json", work_dir / "vectors.npy"
    done: set = set()
    if progress_file.exists() and vectors_file.exists():
        progress = srsly.read_json(progress_file)
        if progress.get("kb") != fingerprint:
            raise ValueError(f"{work_dir} holds the shards of another KB or encoder ({progress.get('kb')}): "
                             "remove it or choose another work dir")
        done = set(progress["done"])
        vectors = numpy.load(vectors_file, mmap_mode="r+")
    else:
        vectors = numpy.lib.format.open_memmap(vectors_file, mode="w+", dtype="float16",
                                               shape=(len(kb), encoder.width))
    shards = range(0, len(kb), shard_size)
    with tqdm(total=len(kb), desc="Encoding entities", unit="entity", mininterval=5.0) as bar:
        bar.update(sum(min(shard_size, len(kb) - start) for start in shards if start in done))
        for start in shards:
            if start in done:
                continue
            end = min(len(kb), start + shard_size)
            vectors[start:end] = encoder.encode(kb.texts(start, end), batch_size=batch_size, progress=False,
                                                bfloat16=bfloat16)
            vectors.flush()
            done.add(start)
            srsly.write_json(progress_file, {"kb": fingerprint, "done": sorted(done)})
            bar.update(end - start)
    del vectors
    return numpy.load(vectors_file, mmap_mode="r")


def _array_to_bytes(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array_from_bytes(data: bytes) -> numpy.ndarray:
    return numpy.load(io.BytesIO(data), allow_pickle=False)
