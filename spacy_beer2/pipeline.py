"""The ``beer2_linker`` pipe: BEER2 end-to-end entity linking (mention detection + linking) in one component.

It listens to a shared ``transformer`` (the retriever's query encoder and the reader's encoder are that one
transformer, trained jointly through the listener), owns the KB, the frozen entity encoder and the faiss index,
and writes ``doc.ents`` with ``kb_id_``. See ``module.py`` for the data flows, ``model.py`` for the Thinc side and
``store.py`` for the KB side. Settings are constructor arguments (so ``spacy.load(..., config=...)`` and the saved
config.cfg decide them); only learned state is saved with the component.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from .aliases import (AliasTable, contiguous_folds, count_pair_docs, held_out_golds, is_name_part, normalize_surface,
                      sample_golds, without_pairs)
from .corpus import NIL
from .decoding import Link, complete_spans, link_name_repeats, resolve
from .kb import KnowledgeBase, type_bucket
from .model import build_module, get_module, set_module_dropout
from .name_evidence import DocNames
from .scoring import CANDIDATES, SCORE, score_el
from .store import EntityStore, TokenTexts, token_texts

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-beer2.Beer2Model.v2"
window_size = 32
window_stride = 16
max_span_length = 10
reader_width = 256
reader_heads = 4
reader_layers = 1
dropout = 0.1
name_evidence = true

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

# What spacy-transformers' Transformer writes to each doc, and the listener reads.
TRF_DATA = "trf_data"
# The KB types that mark a person (``name_repeats``): the coarse type of the AIDA KB, and spaCy's label.
PERSON_BUCKETS = frozenset(type_bucket(t) for t in ("PER", "PERSON"))
# Where ``keep_candidates`` stores a doc's candidates (and ``dynamic_candidates = false`` training reads them).
KEPT_CANDIDATES = "beer2_candidates"


@Language.factory(
    "beer2_linker",
    assigns=["doc.ents", "token.ent_kb_id", "token.ent_type", f"span._.{SCORE}",
             f"span._.{CANDIDATES}"],
    default_config={
        "model": DEFAULT_MODEL,
        "n_candidates": 64,
        "n_train_candidates": 64,
        "n_span_candidates": 8,
        "n_random_negatives": 4,
        "span_retrieval": True,
        "dynamic_candidates": True,
        "alias_candidates": True,
        "use_priors": True,
        "impute_types": True,
        "impute_title_types": False,
        "prior_dropout": 0.0,
        "leave_one_out_priors": True,
        "prior_folds": 0,
        "prior_holdout": 0.0,
        "name_part_holdout": 0.0,
        "title_dropout": 0.2,
        "title_match_prior": 0.0,
        "nil_negatives": True,
        "short_names": True,
        "n_alias_entities": 10,
        "name_part_candidates": 0,
        "acronym_candidates": 5,
        "complete_spans": True,
        "name_repeats": True,
        "threshold": 0.05,
        "mention_threshold": 0.2,
        "spans_per_token": 0.3,
        "index_refresh_every": 100,
        "index_factory": "Flat",
        "index_params": "",
        "default_label": "ENTITY",
        "overwrite": True,
        "n_alternatives": 5,
        "entity_batch_size": 128,
        "encode_bfloat16": False,
        "learn_rate": 5e-4,
        "learn_rate_follows_schedule": False,
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
    alias_candidates: bool,
    use_priors: bool,
    impute_types: bool,
    impute_title_types: bool,
    prior_dropout: float,
    leave_one_out_priors: bool,
    prior_folds: int,
    prior_holdout: float,
    name_part_holdout: float,
    title_dropout: float,
    title_match_prior: float,
    nil_negatives: bool,
    short_names: bool,
    n_alias_entities: int,
    name_part_candidates: int,
    acronym_candidates: int,
    complete_spans: bool,
    name_repeats: bool,
    threshold: float,
    mention_threshold: float,
    spans_per_token: float,
    index_refresh_every: int,
    index_factory: str,
    index_params: str,
    default_label: str,
    overwrite: bool,
    n_alternatives: int,
    entity_batch_size: int,
    encode_bfloat16: bool,
    learn_rate: Optional[float],
    learn_rate_follows_schedule: bool,
    scorer: Optional[Callable],
) -> "Beer2Linker":
    """Create a beer2_linker; the defaults are the factory's default_config (README: config reference). The
    signature is spelled out so that spaCy validates the types of config values."""
    settings = dict(locals())
    for key in ("nlp", "name", "model"):
        settings.pop(key)
    return Beer2Linker(nlp.vocab, model, name, **settings)


class Beer2Linker(TrainablePipe):
    """Finds the entity mentions of a doc and links each to a KB entity, BEER2 style."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "beer2_linker",
        *,
        n_candidates: int,
        n_train_candidates: int,
        n_span_candidates: int,
        n_random_negatives: int,
        span_retrieval: bool,
        dynamic_candidates: bool,
        alias_candidates: bool,
        use_priors: bool,
        impute_types: bool,
        impute_title_types: bool,
        prior_dropout: float,
        leave_one_out_priors: bool,
        prior_folds: int,
        prior_holdout: float,
        name_part_holdout: float,
        title_dropout: float,
        title_match_prior: float,
        nil_negatives: bool,
        short_names: bool,
        n_alias_entities: int,
        name_part_candidates: int,
        acronym_candidates: int,
        complete_spans: bool,
        name_repeats: bool,
        threshold: float,
        mention_threshold: float,
        spans_per_token: float,
        index_refresh_every: int,
        index_factory: str,
        index_params: str,
        default_label: str,
        overwrite: bool,
        n_alternatives: int,
        entity_batch_size: int,
        encode_bfloat16: bool,
        learn_rate: Optional[float],
        learn_rate_follows_schedule: bool,
        scorer: Optional[Callable] = score_el,
    ) -> None:
        for setting, value in (("threshold", threshold), ("mention_threshold", mention_threshold)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name}: {setting} must be a probability strictly between 0 and 1, got {value}")
        for setting, value in (("prior_dropout", prior_dropout), ("prior_holdout", prior_holdout),
                               ("name_part_holdout", name_part_holdout), ("title_dropout", title_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: {setting} must be in [0, 1), got {value}")
        if prior_folds < 0 or prior_folds == 1:
            raise ValueError(f"{name}: prior_folds must be 0 (leave each doc out) or at least 2, got {prior_folds}")
        if not 0.0 <= title_match_prior <= 1.0:
            raise ValueError(f"{name}: title_match_prior must be in [0, 1], got {title_match_prior}")
        for setting, value in (("name_part_candidates", name_part_candidates),
                               ("acronym_candidates", acronym_candidates)):
            if value < 0:
                raise ValueError(f"{name}: {setting} must be 0 (off) or more, got {value}")
        for setting, value in (("n_candidates", n_candidates), ("n_train_candidates", n_train_candidates),
                               ("index_refresh_every", index_refresh_every), ("entity_batch_size", entity_batch_size),
                               ("n_alias_entities", n_alias_entities)):
            if value < 1:
                raise ValueError(f"{name}: {setting} must be at least 1, got {value}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.n_candidates = n_candidates
        self.n_train_candidates = n_train_candidates
        self.n_span_candidates = n_span_candidates
        self.n_random_negatives = n_random_negatives
        self.span_retrieval = span_retrieval
        self.dynamic_candidates = dynamic_candidates
        self.alias_candidates = alias_candidates
        self.use_priors = use_priors
        self.prior_dropout = prior_dropout
        self.leave_one_out_priors = leave_one_out_priors
        self.prior_folds = prior_folds
        self.prior_holdout = prior_holdout
        self.name_part_holdout = name_part_holdout
        self._holdout_rng: Optional[numpy.random.Generator] = None  # made on first use (see _training_matches)
        self.title_dropout = title_dropout
        self.title_match_prior = title_match_prior
        self.nil_negatives = nil_negatives
        self.short_names = short_names
        self.name_part_candidates = name_part_candidates
        self.acronym_candidates = acronym_candidates
        self.complete_spans = complete_spans
        self.name_repeats = name_repeats
        self.threshold = threshold
        self.mention_threshold = mention_threshold
        self.spans_per_token = spans_per_token
        self.index_refresh_every = index_refresh_every
        self.default_label = default_label
        self.overwrite = overwrite
        self.n_alternatives = n_alternatives
        self.learn_rate = learn_rate
        self.learn_rate_follows_schedule = learn_rate_follows_schedule
        self._peak_schedule_rate = 0.0  # training only: the highest rate the training optimizer has had
        self.cfg: Dict[str, Any] = {"input_width": None}  # learned: the width of the shared transformer
        self.store = EntityStore(index_factory, entity_batch_size, n_alias_entities, index_params, impute_types,
                                 impute_title_types, encode_bfloat16)
        self._updates_since_refresh: Optional[int] = None  # None: the index matches the weights
        # training only (not saved): in how many training docs each (surface, entity) pair is a gold mention, and
        # with prior_folds, the same within each fold and the fold of each training doc (by its text)
        self._pair_docs: Dict[Tuple[str, int], int] = {}
        self._fold_pair_docs: List[Dict[Tuple[str, int], int]] = []
        self._doc_folds: Dict[str, int] = {}
        self._optimizer: Optional[Optimizer] = None
        for ext in (SCORE, CANDIDATES):
            if not Span.has_extension(ext):
                Span.set_extension(ext, default=None)

    @property
    def kb(self) -> Optional[KnowledgeBase]:
        return self.store.kb

    @property
    def max_span_length(self) -> int:
        return int(self.model.attrs["module_config"]["max_span_length"])

    # -- set-up ----------------------------------------------------------------------------------------------------
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        kb: Union[str, Path, KnowledgeBase, None] = None,
        aliases: Union[str, Path, AliasTable, None] = None,
    ) -> None:
        """Load the KB (and prior table), copy the shared transformer into the entity encoder, build the module and
        the index.

        kb: a KB file (JSONL or a title list, see ``kb.py``) or a KnowledgeBase:
            ``[initialize.components.beer2_linker] kb = ${paths.kb}``.
        aliases: optional prior table p(e|m) (JSONL, see ``aliases.py``): ``aliases = ${paths.aliases}``.
        """
        validate_get_examples(get_examples, "Beer2Linker.initialize")
        if kb is None:
            raise ValueError(f"{self.name} needs a KB: set [initialize.components.{self.name}] kb = ${{paths.kb}}")
        from .encoder import EntityEncoder

        transformer, tokenizer = self._shared_transformer(nlp)
        self.store.encoder = EntityEncoder.from_shared(transformer, tokenizer)
        self.cfg["input_width"] = self.store.encoder.width
        build_module(self.model, self.store.encoder.width)
        self.set_kb(kb, aliases)
        if not self.dynamic_candidates:  # fail now, not at the first update
            for eg in get_examples():
                self._kept_candidates(eg)
        if self.leave_one_out_priors:
            texts, doc_pairs = [], []
            for eg in get_examples():
                texts.append(eg.reference.text)
                doc_pairs.append([(surface, row) for (_, _, row), surface in zip(*self._gold_pairs(eg)) if row >= 0])
            self._pair_docs = count_pair_docs(doc_pairs)
            if self.prior_folds:
                folds = contiguous_folds(len(doc_pairs), self.prior_folds)
                self._fold_pair_docs = [count_pair_docs(pairs for pairs, f in zip(doc_pairs, folds) if f == fold)
                                        for fold in range(self.prior_folds)]
                self._doc_folds = dict(zip(texts, folds))

    def set_kb(self, kb: Union[str, Path, KnowledgeBase], aliases: Union[str, Path, AliasTable, None] = None,
               work_dir: Union[str, Path, None] = None) -> None:
        """Use a new KB (and optionally a new prior table): encode it with the entity encoder and re-index it.
        No retraining is needed; without ``aliases`` the current prior table is mapped onto the new KB. With
        ``work_dir``, the KB is encoded in resumable shards into a memory-mapped float16 file there (large KBs)."""
        if self.store.encoder is None:
            raise ValueError(f"{self.name} has no entity encoder yet: initialize it or load a trained pipeline")
        self.store.encoder.to(self._device)
        self.store.set_kb(kb, aliases, work_dir)
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

    # -- the index -------------------------------------------------------------------------------------------------
    def refresh_index(self) -> None:
        """Re-project the KB's base vectors with the current entity adapter and rebuild the faiss index."""
        import torch

        module = get_module(self.model)
        device = self._device
        was_training = module.training
        module.eval()

        def project(base: numpy.ndarray) -> numpy.ndarray:
            with torch.no_grad():
                return module.retriever.entity_vectors(torch.as_tensor(base, device=device).float()).cpu().numpy()

        self.store.build_index(project)
        module.train(was_training)
        self._updates_since_refresh = None

    def _entity_table(self, titles: bool = False):
        if self.store.kb is None:
            raise ValueError(f"{self.name} has no KB: initialize it with one, or call set_kb()")
        return self.store.entity_table(self._device, titles)

    @property
    def _device(self) -> "torch.device":
        """Where the module runs (spaCy's GPU choice moves it): the KB side follows it."""
        return next(get_module(self.model).parameters()).device

    def _settings(self):
        from .module import RetrievalSettings

        return RetrievalSettings(
            n_candidates=self.n_candidates, n_train_candidates=self.n_train_candidates,
            n_span_candidates=self.n_span_candidates, n_random_negatives=self.n_random_negatives,
            span_retrieval=self.span_retrieval, alias_candidates=self.alias_candidates, use_priors=self.use_priors,
            prior_dropout=self.prior_dropout, title_dropout=self.title_dropout,
            title_match_prior=self.title_match_prior, nil_negatives=self.nil_negatives,
            mention_threshold=self.mention_threshold, spans_per_token=self.spans_per_token,
        )

    def _matches(self, texts: List[TokenTexts], held: Optional[List[List[Tuple[int, int, int]]]] = None
                 ) -> List[Any]:
        """The docs' alias matches (from their ``token_texts``; without the ``held`` out gold pairs of each doc, in
        training), then the spans that begin or end KB names and the acronyms of KB names: those come from the KB's
        names, never from training anchors, so nothing is held out of them."""
        out = []
        for i, (words, spaces) in enumerate(texts):
            matches = self.store.matches(words, spaces, self.max_span_length, self.short_names)
            if held is not None:
                matches = without_pairs(matches, held[i])
            parts = self.store.name_part_matches(words, spaces, self.max_span_length, self.name_part_candidates)
            out.append(matches.plus(parts + self.store.acronym_matches(words, self.acronym_candidates)))
        return out

    def _names(self, texts: List[TokenTexts]) -> Optional[List[DocNames]]:
        """The docs' name-like spans (from their ``token_texts``), for a reader that weighs name evidence (else
        None)."""
        if not get_module(self.model).reader.name_evidence:
            return None
        return [DocNames(words, self.max_span_length) for words, _ in texts]

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
        if self.store.kb is None or not self.model.shims:
            raise ValueError(f"{self.name} is not initialized: call nlp.initialize() with a KB before training")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        if self._updates_since_refresh is not None and self._updates_since_refresh >= self.index_refresh_every:
            self.refresh_index()
        docs = [eg.predicted for eg in examples]
        golds = [self._gold(eg) for eg in examples]
        module = get_module(self.model)
        module.train()
        set_dropout_rate(self.model, drop)
        set_module_dropout(self.model, drop)
        states, backprop = self.model.begin_update(docs)
        table = self._entity_table(titles=self.title_dropout > 0)
        settings = self._settings()
        texts = [token_texts(doc) for doc in docs]
        batch = module.prepare(states.tensors, self._training_matches(examples, golds, texts), settings, golds,
                               self._names(texts))
        fixed = None if self.dynamic_candidates else [self._kept_candidates(eg) for eg in examples]
        module.retrieve(batch, table, settings, golds, fixed)
        self.store.impute_types_of(batch.candidates.cpu().numpy())
        loss, parts = module.loss(batch, table, golds, settings)
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
        so unless ``learn_rate`` is null they get an Adam optimizer of their own at that rate (not saved with the
        pipeline); the transformer keeps the training optimizer. With ``learn_rate_follows_schedule`` that rate
        falls as the training optimizer's falls from its peak (warm-up keeps it at ``learn_rate``), so that the
        linker settles with the transformer instead of stepping at full rate to the last update."""
        if self.learn_rate is None:
            self.model.finish_update(sgd)
            return
        if self._optimizer is None:
            from thinc.api import Adam

            self._optimizer = Adam(self.learn_rate, grad_clip=1.0, L2=0.0, use_averages=False)
        if self.learn_rate_follows_schedule:
            self._optimizer.learn_rate = self.learn_rate * scheduled_share(sgd.learn_rate, self._peak_schedule_rate)
            self._peak_schedule_rate = max(self._peak_schedule_rate, sgd.learn_rate)
        self.model.finish_update(self._optimizer)

    def _gold(self, eg: Example) -> List[Tuple[int, int, int]]:
        """Gold mentions as (start, end, KB row) token spans of the predicted doc; row -1 for NIL/out-of-KB.
        NIL never goes through a KB lookup (a KB may well have an entity with the id "NIL")."""
        gold = []
        for ent in eg.reference.ents:
            row = self.store.kb.row(ent.kb_id_) if ent.kb_id_ and ent.kb_id_ != NIL else None
            # aligned one by one: spaCy's alignment keeps the label but not the kb_id
            for span in eg.get_aligned_spans_y2x([ent], allow_overlap=False):
                gold.append((span.start, span.end, -1 if row is None else row))
        return gold

    def _gold_pairs(self, eg: Example) -> Tuple[List[Tuple[int, int, int]], List[str]]:
        """The gold mentions of ``eg`` (see ``_gold``) and their surfaces as the prior table compares them."""
        golds = self._gold(eg)
        return golds, _surfaces(eg.predicted, golds)

    def _kept_candidates(self, eg: Example) -> Dict[Tuple[int, int], List[int]]:
        """The candidates kept with ``eg``'s reference doc (see ``keep_candidates``) as KB rows by token window of
        the predicted doc; ids the KB lacks are dropped."""
        kept = eg.reference.user_data.get(KEPT_CANDIDATES)
        if kept is None:
            doc_id = eg.reference.user_data.get("doc_id", eg.reference.text[:40])
            raise ValueError(f"{self.name} trains with dynamic_candidates = false, but the training doc {doc_id!r} "
                             "has no candidates kept with it: keep them with a trained pipeline first "
                             "(python -m spacy_beer2 keep-candidates MODEL CORPUS OUTPUT) and train on OUTPUT")
        rows: Dict[Tuple[int, int], List[int]] = {}
        for start_char, end_char, ids in kept:
            span = eg.predicted.char_span(start_char, end_char)
            if span is not None:
                rows[(span.start, span.end)] = [r for r in map(self.store.kb.row, ids) if r is not None]
        return rows

    def _training_matches(self, examples: List[Example], golds: List[List[Tuple[int, int, int]]],
                          texts: List[TokenTexts]) -> List[Any]:
        """The alias matches of the training docs (from their ``token_texts``), without the (surface, entity) pairs
        held out for this update: with ``leave_one_out_priors`` those that only the doc itself (or its fold, with
        ``prior_folds``) could have put in the prior table (see ``aliases.held_out_golds``), a random
        ``prior_holdout`` share of the rest and a random ``name_part_holdout`` share of those whose surface is part
        of the entity's name (``aliases.sample_golds``)."""
        docs = [eg.predicted for eg in examples]
        sampled = self.prior_holdout > 0 or self.name_part_holdout > 0
        if not self._pair_docs and not sampled:
            return self._matches(texts)
        name = lambda row: self.store.kb[row].name  # noqa: E731
        if sampled and self._holdout_rng is None:
            # seeded from numpy's global state (which spacy train seeds), drawn only when used, so that a pipeline
            # without either holdout trains on exactly the random stream it had before these settings existed
            self._holdout_rng = numpy.random.default_rng(numpy.random.randint(0, 2**31))
        held = []
        for gold, doc in zip(golds, docs):
            surfaces = _surfaces(doc, gold)
            held_doc = (held_out_golds(gold, surfaces, self._pair_docs, name, self._own_pair_docs(doc))
                        if self._pair_docs else [])
            if self._holdout_rng is not None:
                held_doc += sample_golds(gold, surfaces, name, self.prior_holdout, self._holdout_rng)
                held_doc += sample_golds(gold, surfaces, name, self.name_part_holdout, self._holdout_rng, is_name_part)
            held.append(held_doc)
        return self._matches(texts, held)

    def _own_pair_docs(self, doc: Doc) -> Optional[Dict[Tuple[str, int], int]]:
        """The pair counts of ``doc``'s fold with ``prior_folds``; None (the doc alone) without, or for a doc that
        was not among the training docs at initialization."""
        fold = self._doc_folds.get(doc.text)
        return None if fold is None else self._fold_pair_docs[fold]

    def get_loss(self, examples: Iterable[Example], scores: Any) -> Tuple[float, Any]:
        raise NotImplementedError("beer2_linker computes its joint loss in update(); see Beer2Module.loss")

    # -- prediction ------------------------------------------------------------------------------------------------
    def _retrieve(self, docs: List[Doc], settings):
        """The docs' windows with their candidates, from the current index (refreshed first if training moved it)."""
        module = get_module(self.model)
        if any(len(doc) and Doc.has_extension(TRF_DATA) and doc._.get(TRF_DATA) is None for doc in docs):
            # the listener would quietly read zeros
            raise ValueError(f"{self.name} reads the token states of the shared transformer, but a doc reached it "
                             "without them: run the 'transformer' component first (is it disabled, or missing "
                             "from the pipeline?)")
        if self._updates_since_refresh is not None:
            self.refresh_index()
        module.eval()
        states = self.model.predict(docs)
        texts = [token_texts(doc) for doc in docs]
        batch = module.prepare(states.tensors, self._matches(texts), settings, names=self._names(texts))
        module.retrieve(batch, self._entity_table(), settings)
        self.store.impute_types_of(batch.candidates.cpu().numpy())
        return batch

    def predict(self, docs: Iterable[Doc]) -> List[List[Link]]:
        """The non-overlapping links of each doc."""
        docs = list(docs)
        return [self.decode(doc, links) for doc, links in zip(docs, self.candidate_links(docs, self.threshold))]

    def decode(self, doc: Doc, links: Iterable[Link]) -> List[Link]:
        """The non-overlapping links of ``doc`` among its ``candidate_links``, boundaries mended with
        ``complete_spans``, repeated words of linked people's names linked with ``name_repeats``."""
        links = resolve(links)
        if self.complete_spans:
            links = complete_spans(doc, links, lambda row: self.store.kb[row].name)
        if self.name_repeats:
            links = link_name_repeats(doc, links, self._is_person)
        return links

    def _is_person(self, row: int) -> bool:
        """Whether the KB types (or imputes, with ``impute_types``) entity ``row`` as a person."""
        store = self.store
        bucket = store.type_buckets()[row] if store.impute_types else type_bucket(store.kb[row].type)
        return bucket in PERSON_BUCKETS

    def candidate_links(self, docs: Iterable[Doc], threshold: float) -> List[List[Link]]:
        """Every (span, entity) of each doc scoring above ``threshold``, before overlaps are resolved."""
        import torch

        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [[] for _ in docs]
        settings = self._settings()
        with torch.no_grad():
            batch = self._retrieve(docs, settings)
            return get_module(self.model).links(batch, self._entity_table(), settings, threshold, self.n_alternatives)

    def window_candidates(self, docs: Iterable[Doc], n_candidates: Optional[int] = None
                          ) -> List[List[Tuple[int, int, List[str]]]]:
        """(start, end, candidate ids) of every window: what the reader sees (``n_candidates`` of them, by default
        the component's), for retriever recall and for ``keep_candidates``."""
        import torch

        docs = list(docs)
        out: List[List[Tuple[int, int, List[str]]]] = [[] for _ in docs]
        if not any(len(doc) for doc in docs):
            return out
        settings = self._settings()
        if n_candidates is not None:
            settings.n_candidates = n_candidates
        with torch.no_grad():
            batch = self._retrieve(docs, settings)
        kb = self.store.kb
        for (d, s, e), rows in zip(batch.windows, batch.candidates.tolist()):
            out[d].append((s, e, [kb[r].id for r in rows if r >= 0]))
        return out

    def keep_candidates(self, docs: Iterable[Doc]) -> None:
        """Keep each window's ``n_train_candidates`` candidates from this pipeline's retriever in the docs'
        ``user_data`` as (start char, end char, KB ids): what a later training with ``dynamic_candidates = false``
        reads instead of searching its own index. EntQA-style pipeline training: candidates retrieved once by a
        *trained* retriever, kept with the docs."""
        docs = list(docs)
        for doc, windows in zip(docs, self.window_candidates(docs, self.n_train_candidates)):
            doc.user_data[KEPT_CANDIDATES] = [[doc[s].idx, doc[e - 1].idx + len(doc[e - 1]), ids]
                                              for s, e, ids in windows]

    def set_annotations(self, docs: Iterable[Doc], links: List[List[Link]]) -> None:
        """Write the links as ``doc.ents`` (label: the entity's type, else ``default_label``), with the score and
        the best alternatives in ``span._``; ``overwrite = false`` keeps existing ents and adds what does not
        overlap them."""
        kb = self.store.kb
        for doc, doc_links in zip(docs, links):
            spans = []
            for link in doc_links:
                entity = kb[link.row]
                span = Span(doc, link.start, link.end, label=entity.type or self.default_label, kb_id=entity.id)
                span._.set(SCORE, link.score)
                span._.set(CANDIDATES, [(kb[row].id, score) for row, score in link.alternatives])
                spans.append(span)
            if self.overwrite:
                doc.ents = spans
            else:
                kept = list(doc.ents)
                taken = {i for ent in kept for i in range(ent.start, ent.end)}
                doc.ents = kept + [s for s in spans if not taken.intersection(range(s.start, s.end))]

    # -- serialization: learned state only (weights, width, KB side); settings come from the config --------------------
    def _before_save(self) -> None:
        if self._updates_since_refresh is not None:
            self.refresh_index()

    def _load_cfg(self, data: Dict[str, Any]) -> None:
        self.cfg["input_width"] = data.get("input_width")
        self._updates_since_refresh = None
        if self.cfg["input_width"] is not None:
            build_module(self.model, self.cfg["input_width"])

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Save the width, the weights and the entity store (KB, prior table, encoder, vectors, index)."""
        self._before_save()
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: self.model.to_disk(p),
            "entities": lambda p: self.store.to_disk(p),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "Beer2Linker":
        """Load what ``to_disk`` saved into a linker built from the (possibly overridden) config."""
        deserialize = {
            "cfg": lambda p: self._load_cfg(srsly.read_json(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self.model.from_disk(p),
            "entities": lambda p: self.store.from_disk(p) if p.exists() else None,
        }
        util.from_disk(path, deserialize, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """The same parts as ``to_disk``, as bytes."""
        self._before_save()
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": lambda: self.model.to_bytes(),
            "entities": self.store.to_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "Beer2Linker":
        """Load what ``to_bytes`` saved."""
        deserialize = {
            "cfg": lambda b: self._load_cfg(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": lambda b: self.model.from_bytes(b),
            "entities": self.store.from_bytes,
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        return self


def scheduled_share(rate: float, peak: float) -> float:
    """The share of its peak so far that a scheduled rate is at: 1 while it rises (warm-up) or before it has
    risen above 0."""
    return 1.0 if rate >= peak or peak <= 0 else rate / peak


def _surfaces(doc: Doc, golds: List[Tuple[int, int, int]]) -> List[str]:
    """The surfaces of gold token spans, as the prior table compares them."""
    return [normalize_surface(doc[start:end].text) for start, end, _ in golds]
