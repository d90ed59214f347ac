"""The ``beer2_linker`` pipe: BEER2 end-to-end entity linking (mention detection + linking) in one component.

It listens to a shared ``transformer`` (the retriever's query encoder and the reader's encoder are that one
transformer, trained jointly through the listener), owns the KB, the frozen entity encoder and the faiss index,
and writes ``doc.ents`` with ``kb_id_``. See ``module.py`` for the data flows and ``model.py`` for the Thinc side.
"""

import io
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from .decoding import Link, resolve
from .index import EntityIndex
from .kb import KnowledgeBase, load_kb
from .model import build_module, get_module
from .scoring import score_el

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-beer2.Beer2Model.v1"
window_size = 32
window_stride = 16
max_span_length = 10
reader_width = 256
reader_heads = 4
reader_layers = 1
dropout = 0.1

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

SCORE_EXTENSION = "beer2_score"
CANDIDATES_EXTENSION = "beer2_candidates"


@Language.factory(
    "beer2_linker",
    assigns=["doc.ents", "token.ent_kb_id", "token.ent_type", f"span._.{SCORE_EXTENSION}",
             f"span._.{CANDIDATES_EXTENSION}"],
    default_config={
        "model": DEFAULT_MODEL,
        "n_candidates": 100,
        "n_train_candidates": 64,
        "n_span_candidates": 8,
        "n_random_negatives": 4,
        "span_retrieval": True,
        "dynamic_candidates": True,
        "threshold": 0.05,
        "mention_threshold": 0.2,
        "spans_per_token": 0.3,
        "index_refresh_every": 100,
        "index_factory": "Flat",
        "default_label": "ENTITY",
        "overwrite_ents": True,
        "n_alternatives": 5,
        "entity_batch_size": 128,
        "learn_rate": 5e-4,
        "scorer": {"@scorers": "spacy-beer2.el_scorer.v1"},
    },
    default_score_weights={"el_f": 1.0, "el_p": 0.0, "el_r": 0.0, "md_f": 0.0, "md_p": 0.0, "md_r": 0.0},
)
def make_beer2_linker(
    nlp: Language,
    name: str,
    model: Model,
    n_candidates: int,
    n_train_candidates: int,
    n_span_candidates: int,
    n_random_negatives: int,
    span_retrieval: bool,
    dynamic_candidates: bool,
    threshold: float,
    mention_threshold: float,
    spans_per_token: float,
    index_refresh_every: int,
    index_factory: str,
    default_label: str,
    overwrite_ents: bool,
    n_alternatives: int,
    entity_batch_size: int,
    learn_rate: Optional[float],
    scorer: Optional[Callable],
) -> "Beer2Linker":
    """Create a beer2_linker. See the README's config reference for every setting."""
    return Beer2Linker(
        nlp.vocab, model, name, n_candidates=n_candidates, n_train_candidates=n_train_candidates,
        n_span_candidates=n_span_candidates, n_random_negatives=n_random_negatives, span_retrieval=span_retrieval,
        dynamic_candidates=dynamic_candidates, threshold=threshold, mention_threshold=mention_threshold,
        spans_per_token=spans_per_token, index_refresh_every=index_refresh_every, index_factory=index_factory,
        default_label=default_label, overwrite_ents=overwrite_ents, n_alternatives=n_alternatives,
        entity_batch_size=entity_batch_size, learn_rate=learn_rate, scorer=scorer,
    )


class Beer2Linker(TrainablePipe):
    """Finds the entity mentions of a doc and links each to a KB entity, BEER2 style."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "beer2_linker",
        *,
        n_candidates: int = 100,
        n_train_candidates: int = 64,
        n_span_candidates: int = 8,
        n_random_negatives: int = 4,
        span_retrieval: bool = True,
        dynamic_candidates: bool = True,
        threshold: float = 0.05,
        mention_threshold: float = 0.2,
        spans_per_token: float = 0.3,
        index_refresh_every: int = 100,
        index_factory: str = "Flat",
        default_label: str = "ENTITY",
        overwrite_ents: bool = True,
        n_alternatives: int = 5,
        entity_batch_size: int = 128,
        learn_rate: Optional[float] = 5e-4,
        scorer: Optional[Callable] = score_el,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "n_candidates": n_candidates,
            "n_train_candidates": n_train_candidates,
            "n_span_candidates": n_span_candidates,
            "n_random_negatives": n_random_negatives,
            "span_retrieval": span_retrieval,
            "dynamic_candidates": dynamic_candidates,
            "threshold": threshold,
            "mention_threshold": mention_threshold,
            "spans_per_token": spans_per_token,
            "index_refresh_every": index_refresh_every,
            "index_factory": index_factory,
            "default_label": default_label,
            "overwrite_ents": overwrite_ents,
            "n_alternatives": n_alternatives,
            "entity_batch_size": entity_batch_size,
            "learn_rate": learn_rate,
            "input_width": None,
        }
        self.kb: Optional[KnowledgeBase] = None
        self.encoder = None  # EntityEncoder, created at initialize or loaded
        self.entity_vectors: Optional[numpy.ndarray] = None  # base vectors of the KB, (N, H)
        self.index = EntityIndex(index_factory)
        self._table = None  # EntityTable on the module's device, rebuilt when the KB changes
        self._updates_since_refresh: Optional[int] = None  # None: the index matches the weights
        self._fixed_candidates: Dict[str, List[List[int]]] = {}
        self._optimizer: Optional[Optimizer] = None
        for ext in (SCORE_EXTENSION, CANDIDATES_EXTENSION):
            if not Span.has_extension(ext):
                Span.set_extension(ext, default=None)

    # -- set-up ----------------------------------------------------------------------------------------------------
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        kb: Union[str, Path, KnowledgeBase, None] = None,
    ) -> None:
        """Load the KB, copy the shared transformer into the entity encoder, build the module and the index.

        kb: a KB file (JSONL or a title list, see ``kb.py``) or a KnowledgeBase; set it in the config as
            ``[initialize.components.beer2_linker] kb = ${paths.kb}``.
        """
        validate_get_examples(get_examples, "Beer2Linker.initialize")
        if kb is None:
            raise ValueError(f"{self.name} needs a KB: set [initialize.components.{self.name}] kb = ${{paths.kb}}")
        from .encoder import EntityEncoder

        transformer, tokenizer = self._shared_transformer(nlp)
        self.encoder = EntityEncoder.from_shared(transformer, tokenizer)
        self.cfg["input_width"] = self.encoder.width
        build_module(self.model, self.encoder.width)
        self.set_kb(kb)
        if not self.cfg["dynamic_candidates"]:
            self._fix_candidates(get_examples, nlp)

    def set_kb(self, kb: Union[str, Path, KnowledgeBase]) -> None:
        """Use a new KB: encode it with the entity encoder and re-index it. No retraining is needed."""
        if self.encoder is None:
            raise ValueError(f"{self.name} has no entity encoder yet: initialize it or load a trained pipeline")
        self.kb = kb if isinstance(kb, KnowledgeBase) else load_kb(kb)
        self.entity_vectors = self.encoder.encode(self.kb.texts(), batch_size=self.cfg["entity_batch_size"])
        self._fixed_candidates = {}
        self._table = None
        self.refresh_index()

    def _shared_transformer(self, nlp: Optional[Language]) -> Tuple[Any, Any]:
        """The Hugging Face model and tokenizer this component reads from: its listener's upstream transformer,
        or a transformer inside its own model."""
        from spacy_transformers import Transformer
        from spacy_transformers.layers import TransformerModel

        candidates = []
        if nlp is not None:
            pipes = [proc for _, proc in nlp.pipeline if isinstance(proc, Transformer)]
            candidates = [p.model for p in pipes if self.name in p.listening_components] + [p.model for p in pipes]
        candidates += [node for node in self.model.walk() if isinstance(node, TransformerModel)]
        for trf_model in candidates:
            if trf_model.attrs.get("has_transformer"):
                return trf_model.transformer, trf_model.tokenizer
        raise ValueError(f"{self.name} found no initialized transformer to copy the entity encoder from: add a "
                         "'transformer' component before it, and initialize the pipeline with nlp.initialize()")

    def _fix_candidates(self, get_examples: Callable[[], Iterable[Example]], nlp: Optional[Language]) -> None:
        """EntQA-style pipeline training: each training window's candidates, retrieved once by the initial
        retriever and kept for the whole training (``dynamic_candidates = false``)."""
        docs = [eg.predicted.copy() for eg in get_examples()]
        if nlp is not None:
            for name, proc in nlp.pipeline:
                if name == self.name:
                    break
                docs = list(proc.pipe(docs))
        settings = self._settings()
        settings.n_candidates = self.cfg["n_train_candidates"]
        for first in range(0, len(docs), 16):
            chunk = docs[first : first + 16]
            batch = self._retrieve(chunk, settings)
            offset = 0
            for d, doc in enumerate(chunk):
                n = sum(1 for wd, _, _ in batch.windows if wd == d)
                rows = batch.candidates[offset : offset + n].tolist()
                self._fixed_candidates[doc.text] = [[r for r in row if r >= 0] for row in rows]
                offset += n

    # -- the index -------------------------------------------------------------------------------------------------
    def refresh_index(self) -> None:
        """Re-project the KB's base vectors with the current entity adapter and rebuild the faiss index."""
        import torch

        module = get_module(self.model)
        table = self._entity_table()
        was_training = module.training
        module.eval()
        with torch.no_grad():
            vectors = [
                module.retriever.entity_vectors(table.base[i : i + 65536]).float().cpu().numpy()
                for i in range(0, len(table.base), 65536)
            ]
        module.train(was_training)
        self.index.build(numpy.concatenate(vectors))
        self._updates_since_refresh = None

    def _entity_table(self):
        import torch

        from .module import EntityTable

        if self._table is None:
            if self.kb is None or self.entity_vectors is None:
                raise ValueError(f"{self.name} has no KB: initialize it with one, or call set_kb()")
            device = next(get_module(self.model).parameters()).device
            popularity = numpy.asarray([e.popularity for e in self.kb], dtype="float32")
            popularity = popularity / max(float(popularity.max()), 1.0)
            self._table = EntityTable(torch.as_tensor(self.entity_vectors, device=device),
                                      torch.as_tensor(popularity, device=device), self.index)
        return self._table

    def _settings(self):
        from .module import RetrievalSettings

        cfg = self.cfg
        return RetrievalSettings(
            n_candidates=cfg["n_candidates"], n_train_candidates=cfg["n_train_candidates"],
            n_span_candidates=cfg["n_span_candidates"], n_random_negatives=cfg["n_random_negatives"],
            span_retrieval=cfg["span_retrieval"], mention_threshold=cfg["mention_threshold"],
            spans_per_token=cfg["spans_per_token"],
        )

    # -- training --------------------------------------------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """One joint step: retrieval from the current index, reading, and the joint loss through the listener."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "Beer2Linker.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        if self._updates_since_refresh is not None and self._updates_since_refresh >= self.cfg["index_refresh_every"]:
            self.refresh_index()
        docs = [eg.predicted for eg in examples]
        golds = [self._gold(eg) for eg in examples]
        module = get_module(self.model)
        module.train()
        set_dropout_rate(self.model, drop)
        states, backprop = self.model.begin_update(docs)
        table = self._entity_table()
        settings = self._settings()
        batch = module.prepare(states.tensors, settings, golds)
        fixed = [self._fixed_candidates.get(doc.text) for doc in docs] if self._fixed_candidates else None
        module.retrieve(batch, table, settings, golds, fixed)
        loss, parts = module.loss(batch, table, golds)
        backprop(loss)
        if sgd not in (None, False):
            self.finish_update(sgd)
        self._updates_since_refresh = (self._updates_since_refresh or 0) + 1
        losses[self.name] += loss.item()
        for part, value in parts.items():
            losses[f"{self.name}.{part}"] = losses.get(f"{self.name}.{part}", 0.0) + value
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Update the linker's own weights. They start from scratch while the shared transformer is pretrained,
        so unless ``learn_rate`` is null they get an Adam optimizer of their own at that rate; the transformer
        keeps the training optimizer (it is updated by its own component)."""
        if self.cfg["learn_rate"] is None:
            self.model.finish_update(sgd)
            return
        if self._optimizer is None:
            from thinc.api import Adam

            self._optimizer = Adam(self.cfg["learn_rate"], grad_clip=1.0, L2=0.0, use_averages=False)
        self.model.finish_update(self._optimizer)

    def _gold(self, eg: Example) -> List[Tuple[int, int, int]]:
        """Gold mentions as (start, end, KB row) token spans of the predicted doc; row -1 for NIL/out-of-KB."""
        gold = []
        for ent in eg.reference.ents:
            row = self.kb.row(ent.kb_id_) if ent.kb_id_ else None
            # aligned one by one: spaCy's alignment keeps the label but not the kb_id
            for span in eg.get_aligned_spans_y2x([ent], allow_overlap=False):
                gold.append((span.start, span.end, -1 if row is None else row))
        return gold

    def get_loss(self, examples: Iterable[Example], scores: Any) -> Tuple[float, Any]:
        raise NotImplementedError("beer2_linker computes its joint loss in update(); see Beer2Module.loss")

    # -- prediction ------------------------------------------------------------------------------------------------
    def _retrieve(self, docs: List[Doc], settings):
        module = get_module(self.model)
        module.eval()
        states = self.model.predict(docs)
        batch = module.prepare(states.tensors, settings)
        module.retrieve(batch, self._entity_table(), settings)
        return batch

    def predict(self, docs: Iterable[Doc]) -> List[List[Link]]:
        """The non-overlapping links of each doc."""
        return [resolve(links) for links in self.candidate_links(docs, self.cfg["threshold"])]

    def candidate_links(self, docs: Iterable[Doc], threshold: float) -> List[List[Link]]:
        """Every (span, entity) of each doc scoring above ``threshold``, before overlaps are resolved."""
        import torch

        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [[] for _ in docs]
        if self._updates_since_refresh is not None:
            self.refresh_index()
        with torch.no_grad():
            batch = self._retrieve(docs, self._settings())
            return get_module(self.model).links(batch, self._entity_table(), threshold, self.cfg["n_alternatives"])

    def window_candidates(self, docs: Iterable[Doc]) -> List[List[Tuple[int, int, List[str]]]]:
        """(start, end, candidate ids) of every window: what the reader sees, for retriever recall."""
        import torch

        docs = list(docs)
        with torch.no_grad():
            batch = self._retrieve(docs, self._settings())
        out: List[List[Tuple[int, int, List[str]]]] = [[] for _ in docs]
        for (d, s, e), rows in zip(batch.windows, batch.candidates.tolist()):
            out[d].append((s, e, [self.kb[r].id for r in rows if r >= 0]))
        return out

    def set_annotations(self, docs: Iterable[Doc], links: List[List[Link]]) -> None:
        for doc, doc_links in zip(docs, links):
            spans = []
            for link in doc_links:
                entity = self.kb[link.row]
                span = Span(doc, link.start, link.end, label=entity.type or self.cfg["default_label"], kb_id=entity.id)
                span._.set(SCORE_EXTENSION, link.score)
                span._.set(CANDIDATES_EXTENSION, [(self.kb[row].id, score) for row, score in link.alternatives])
                spans.append(span)
            if self.cfg["overwrite_ents"]:
                doc.ents = spans
            else:
                kept = list(doc.ents)
                taken = {i for ent in kept for i in range(ent.start, ent.end)}
                doc.ents = kept + [s for s in spans if not taken.intersection(range(s.start, s.end))]

    # -- serialization ---------------------------------------------------------------------------------------------
    def _before_save(self) -> None:
        if self._updates_since_refresh is not None:
            self.refresh_index()

    def _load_cfg(self, data: Dict[str, Any]) -> None:
        self.cfg.update(data)
        self.index = EntityIndex(self.cfg["index_factory"])
        self._table = None
        self._updates_since_refresh = None
        if self.cfg["input_width"] is not None:
            build_module(self.model, self.cfg["input_width"])

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        self._before_save()
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: self.model.to_disk(p),
        }
        if self.kb is not None:
            serialize["kb"] = lambda p: self.kb.to_disk(p)
            serialize["entity_vectors"] = lambda p: p.write_bytes(_array_to_bytes(self.entity_vectors))
            serialize["index"] = lambda p: self.index.to_disk(p)
            serialize["entity_encoder"] = lambda p: self.encoder.to_disk(p)
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "Beer2Linker":
        from .encoder import EntityEncoder

        def load_kb_file(p: Path) -> None:
            self.kb = KnowledgeBase.from_dicts(srsly.read_jsonl(p), str(p))

        def load_encoder(p: Path) -> None:
            self.encoder = EntityEncoder.from_disk(p)

        deserialize = {
            "cfg": lambda p: self._load_cfg(srsly.read_json(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self.model.from_disk(p),
            "kb": lambda p: load_kb_file(p) if p.exists() else None,
            "entity_vectors": lambda p: setattr(self, "entity_vectors", _array_from_bytes(p.read_bytes()))
            if p.exists() else None,
            "index": lambda p: self.index.from_disk(p) if p.exists() else None,
            "entity_encoder": lambda p: load_encoder(p) if p.exists() else None,
        }
        util.from_disk(path, deserialize, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        self._before_save()
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": lambda: self.model.to_bytes(),
        }
        if self.kb is not None:
            serialize["kb"] = lambda: srsly.msgpack_dumps(self.kb.to_jsonl())
            serialize["entity_vectors"] = lambda: _array_to_bytes(self.entity_vectors)
            serialize["index"] = lambda: self.index.to_bytes()
            serialize["entity_encoder"] = lambda: srsly.msgpack_dumps(self.encoder.to_bytes())
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "Beer2Linker":
        from .encoder import EntityEncoder

        def load_kb_records(b: bytes) -> None:
            self.kb = KnowledgeBase.from_dicts(srsly.msgpack_loads(b))

        def load_encoder(b: bytes) -> None:
            self.encoder = EntityEncoder.from_bytes(srsly.msgpack_loads(b))

        deserialize = {
            "cfg": lambda b: self._load_cfg(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": lambda b: self.model.from_bytes(b),
            "kb": load_kb_records,
            "entity_vectors": lambda b: setattr(self, "entity_vectors", _array_from_bytes(b)),
            "index": lambda b: self.index.from_bytes(b),
            "entity_encoder": load_encoder,
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        return self


def _array_to_bytes(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array_from_bytes(data: bytes) -> numpy.ndarray:
    return numpy.load(io.BytesIO(data), allow_pickle=False)
