"""Beer2Module: one batch through BEER2's two data flows.

    token states ─► windows ─► window queries ─┐
              └──► mention head ─► span queries ┴─► faiss top-K ─┐
    doc text ─► alias table matches ──────────────────────────────┴─► candidates (+ golds, random negatives
                                                                        in training): fresh every step
    window tokens + candidate vectors + p(e|m) evidence ─► reader ─► start / end / rank per candidate

Golds are (start, end-exclusive, KB row) token spans per doc; row -1 marks NIL or out-of-KB mentions (see
``targets.py``).
"""

import random
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from torch import nn

from . import losses
from .aliases import DocMatches, prior_features, show_title_priors, window_alias_rows
from .decoding import Link, window_links
from .index import EntityIndex
from .name_evidence import DocNames, NameKey, name_features
from .reader import Reader
from .retriever import Retriever, merge_candidates, propose_spans, split_titles
from .targets import Gold, mention_targets, nil_candidates, reader_targets, valid_spans


@dataclass
class RetrievalSettings:
    """The pipe's settings that shape a batch (defaults and meanings: the factory's default_config)."""

    n_candidates: int
    n_train_candidates: int
    n_span_candidates: int
    n_random_negatives: int
    span_retrieval: bool
    alias_candidates: bool
    use_priors: bool
    prior_dropout: float
    title_dropout: float
    title_match_prior: float
    nil_negatives: bool
    mention_threshold: float
    spans_per_token: float


@dataclass
class EntityTable:
    """What the module needs of the KB, on the module's device: base vectors, popularity and type features."""

    base: torch.Tensor  # (N, H)
    popularity: torch.Tensor  # (N,)
    types: torch.Tensor  # (N,) type bucket, 0 = unknown
    index: EntityIndex
    titles: Optional[torch.Tensor] = None  # (N, H) base vectors of the names alone (training with title_dropout)
    is_title: Optional[numpy.ndarray] = None  # (N,) bool, on the CPU: the entity is nothing but a title
    name_keys: Optional[Callable[[int], Tuple[Tuple[int, NameKey], ...]]] = None  # see name_evidence.name_keys


@dataclass
class Batch:
    n_docs: int
    windows: List[Tuple[int, int, int]]  # (doc, start, end)
    window_tokens: torch.Tensor  # (W, S) rows of padded_states; the last row is padding
    padded_states: torch.Tensor  # (N_tokens + 1, H)
    window_queries: torch.Tensor  # (W, H)
    span_logits: List[torch.Tensor]  # per doc (n, L)
    spans: List[torch.Tensor]  # per doc (P, 2) start, end-inclusive
    span_queries: List[torch.Tensor]  # per doc (P, H)
    matches: List[DocMatches]  # per doc, the alias table's matches
    names: Optional[List[DocNames]]  # per doc, its name-like spans (a reader with name evidence)
    candidates: Optional[torch.Tensor] = field(default=None)  # (W, C) KB rows, -1 = padding


@dataclass
class ReaderOutput:
    start: torch.Tensor  # (W, C, S+1) logits, 0 = no answer
    end: torch.Tensor  # (W, C, S+1)
    rank: torch.Tensor  # (W, C)
    entity_vectors: torch.Tensor  # (U, H) projected vectors of the distinct candidate rows
    entity_rows: torch.Tensor  # (U,) their KB rows


class Beer2Module(nn.Module):
    def __init__(self, input_width: int, window_size: int, window_stride: int, max_span_length: int,
                 reader_width: int, reader_heads: int, reader_layers: int, dropout: float,
                 name_evidence: bool = False):
        super().__init__()
        self.window_size = window_size
        self.window_stride = window_stride
        self.max_span_length = max_span_length
        self.retriever = Retriever(input_width, max_span_length, dropout)
        self.reader = Reader(input_width, reader_width, reader_heads, reader_layers, window_size, dropout,
                             name_evidence)

    # -- retriever side --------------------------------------------------------------------------------------------
    def prepare(self, states: Sequence[torch.Tensor], matches: Sequence[DocMatches], settings: RetrievalSettings,
                golds: Optional[Sequence[Gold]] = None, names: Optional[Sequence[DocNames]] = None) -> Batch:
        """Windows, window queries, mention scores and span queries of a batch of docs (``names``: each doc's
        ``DocNames``, which a reader with name evidence needs)."""
        if self.reader.name_evidence and names is None:
            raise ValueError("this reader weighs name evidence: give prepare() the docs' DocNames")
        device = self.retriever.log_scale.device
        width = self.retriever.window_adapter.hidden.in_features
        # the listener gives an empty doc a (0, 0) array
        states = [doc_states if len(doc_states) else doc_states.new_zeros((0, width)) for doc_states in states]
        flat = torch.cat([*states, torch.zeros((1, width), device=device)])
        pad = flat.shape[0] - 1
        windows, token_rows = [], []
        offset = 0
        for d, doc_states in enumerate(states):
            for s, e in make_windows(len(doc_states), self.window_size, self.window_stride):
                windows.append((d, s, e))
                token_rows.append(list(range(offset + s, offset + e)) + [pad] * (self.window_size - (e - s)))
            offset += len(doc_states)
        window_tokens = torch.tensor(token_rows, dtype=torch.long, device=device).view(-1, self.window_size)
        span_logits, spans, span_queries = [], [], []
        for d, doc_states in enumerate(states):
            logits = self.retriever.span_logits(doc_states)
            span_logits.append(logits)
            doc_spans = []
            if settings.span_retrieval and len(doc_states):
                cap = max(1, int(len(doc_states) * settings.spans_per_token))
                doc_spans = propose_spans(logits, settings.mention_threshold, cap)
                if golds is not None:  # teacher forcing: gold mentions also query the retriever in training
                    doc_spans = sorted(set(doc_spans) | {(s, e - 1) for s, e, row in golds[d] if row >= 0})
            span_tensor = torch.tensor(doc_spans, dtype=torch.long, device=device).view(-1, 2)
            spans.append(span_tensor)
            span_queries.append(self.retriever.span_queries(doc_states, span_tensor))
        return Batch(len(states), windows, window_tokens, flat, self.retriever.window_queries(flat, window_tokens),
                     span_logits, spans, span_queries, list(matches), None if names is None else list(names))

    def retrieve(self, batch: Batch, table: EntityTable, settings: RetrievalSettings,
                 golds: Optional[Sequence[Gold]] = None,
                 fixed: Optional[Sequence[Dict[Tuple[int, int], List[int]]]] = None) -> None:
        """Fill ``batch.candidates``: the window's alias entities (those the KB knows more of than a title and the
        title-only ones as two lists), the current index's top-K of the window query and of its span queries,
        interleaved by rank.

        In training (``golds`` given) the golds of each window are forced in and random negatives added; with
        ``fixed`` (EntQA-style pipeline training: each doc's candidates by token window, kept with the docs) those
        replace the search.
        """
        training = golds is not None
        k = settings.n_train_candidates if training else settings.n_candidates
        window_rows = numpy.zeros((len(batch.windows), 0), dtype="int64")
        span_rows_by_window: List[List[numpy.ndarray]] = [[] for _ in batch.windows]
        if fixed is None:
            _, window_rows = table.index.search(batch.window_queries.detach().float().cpu().numpy(), k)
            self._add_span_results(batch, table, settings, span_rows_by_window)
        alias_rows = (window_alias_rows(batch.matches, batch.windows) if settings.alias_candidates and fixed is None
                      else [[] for _ in batch.windows])
        n_kb = len(table.index)
        candidates = []
        for w, (d, s, e) in enumerate(batch.windows):
            if fixed is not None:
                if (s, e) not in fixed[d]:
                    raise ValueError(f"no candidates were kept for tokens {s}-{e} of a training doc: keep them with "
                                     "the tokenizer, window_size and window_stride of this training")
                retrieved, span_rows_w, aliases_w = numpy.asarray(fixed[d][(s, e)], dtype="int64"), [], []
            else:
                retrieved, span_rows_w, aliases_w = window_rows[w], span_rows_by_window[w], alias_rows[w]
            forced: List[int] = []
            randoms: Sequence[int] = ()
            if training:
                forced = [row for gs, ge, row in golds[d] if row >= 0 and gs >= s and ge <= e]
                randoms = random.sample(range(n_kb), min(settings.n_random_negatives, n_kb))
            candidates.append(merge_candidates([*split_titles(aliases_w, table.is_title), retrieved, *span_rows_w],
                                               forced, k, randoms))
        width = max((len(c) for c in candidates), default=0)
        table_rows = numpy.full((len(candidates), width), -1, dtype="int64")
        for w, rows in enumerate(candidates):
            table_rows[w, : len(rows)] = rows
        batch.candidates = torch.as_tensor(table_rows, device=batch.window_queries.device)

    @staticmethod
    def _add_span_results(batch: Batch, table: EntityTable, settings: RetrievalSettings,
                          span_rows_by_window: List[List[numpy.ndarray]]) -> None:
        """Reader → retriever: the top-K of each span query, added to the windows that contain the span."""
        n_spans = sum(len(spans) for spans in batch.spans)
        if not (settings.span_retrieval and settings.n_span_candidates > 0 and n_spans):
            return
        queries = torch.cat(batch.span_queries).detach().float().cpu().numpy()
        _, span_rows = table.index.search(queries, settings.n_span_candidates)
        # each doc's spans sorted by start, so that a window finds its own by bisection (linear in the doc length)
        offsets = numpy.cumsum([0] + [len(spans) for spans in batch.spans])
        by_doc = []
        for d, spans in enumerate(batch.spans):
            spans = spans.cpu().numpy()
            order = numpy.argsort(spans[:, 0], kind="stable")
            by_doc.append((spans[order, 0], spans[order, 1], order + offsets[d]))
        for w, (d, ws, we) in enumerate(batch.windows):
            starts, ends, rows = by_doc[d]
            first, last = numpy.searchsorted(starts, [ws, we])
            inside = numpy.sort(rows[first:last][ends[first:last] < we])  # in query order, the mention head's
            span_rows_by_window[w].extend(span_rows[i] for i in inside)

    # -- reader side -----------------------------------------------------------------------------------------------
    def read(self, batch: Batch, table: EntityTable, settings: RetrievalSettings,
             windows: slice = slice(None)) -> ReaderOutput:
        """Reader logits for a slice of the batch's windows, with the entity vectors it read."""
        rows = batch.candidates[windows]
        valid = rows >= 0
        entity_rows, inverse = torch.unique(rows[valid], return_inverse=True)
        device = rows.device
        base = table.base[entity_rows].float()  # (memory-mapped vectors of a large KB are float16)
        safe_rows = rows.clamp(min=0)
        popularity, types = table.popularity[safe_rows], table.types[safe_rows]
        # title dropout: some entities are shown as a title-only KB shows them (the vector of the name alone, no
        # popularity, type or p(e|m)), so that entities a swapped-in KB knows only by name can still be linked
        titled = torch.zeros(rows.shape, dtype=torch.bool, device=device)
        if self.training and settings.title_dropout > 0 and table.titles is not None:
            shown_as_title = torch.rand(len(entity_rows), device=device) < settings.title_dropout
            base = torch.where(shown_as_title[:, None], table.titles[entity_rows].float(), base)
            titled[valid] = shown_as_title[inverse]
            popularity = popularity.masked_fill(titled, 0.0)
            types = types.masked_fill(titled, 0)
        entity_vectors = self.retriever.entity_vectors(base)
        cand_index = torch.zeros(rows.shape, dtype=torch.long, device=device)
        cand_index[valid] = inverse
        cands = entity_vectors.new_zeros((*rows.shape, entity_vectors.shape[1]))
        cands[valid] = entity_vectors[inverse]
        queries = batch.window_queries[windows]
        priors, start_priors, end_priors = prior_features(
            batch.matches, batch.windows[windows], rows.cpu().numpy(), self.window_size)
        if not settings.use_priors:
            priors[:], start_priors[:], end_priors[:] = 0.0, 0.0, 0.0
        else:
            if self.training and settings.prior_dropout > 0:
                # hide the prior of some candidates, so that the reader also learns to link from context alone
                hidden = numpy.random.random_sample(priors.shape[:2]) < settings.prior_dropout
                priors[hidden], start_priors[hidden], end_priors[hidden] = 0.0, 0.0, 0.0
            if titled.any():
                show_title_priors(priors, start_priors, end_priors, titled.cpu().numpy(),
                                  numpy.random.random_sample(titled.shape) < settings.title_match_prior)
        if self.reader.name_evidence:
            names, start_names, end_names = name_features(batch.names, batch.windows[windows], rows.cpu().numpy(),
                                                          table.name_keys, self.window_size)
            priors = numpy.concatenate([priors, names], axis=-1)
            start_priors = numpy.concatenate([start_priors, start_names], axis=-1)
            end_priors = numpy.concatenate([end_priors, end_names], axis=-1)
        features = torch.cat([
            torch.stack([torch.einsum("wch,wh->wc", cands, queries), popularity], dim=-1),
            torch.as_tensor(priors, device=device),
        ], dim=-1)
        tokens = batch.padded_states[batch.window_tokens[windows]]
        token_mask = batch.window_tokens[windows] < batch.padded_states.shape[0] - 1
        start, end, rank = self.reader(tokens, token_mask, entity_vectors, cand_index, types, features, valid,
                                       torch.as_tensor(start_priors, device=device),
                                       torch.as_tensor(end_priors, device=device))
        return ReaderOutput(start, end, rank, entity_vectors, entity_rows)

    def loss(self, batch: Batch, table: EntityTable, golds: Sequence[Gold], settings: RetrievalSettings
             ) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The joint loss: retriever NCE (window and span queries), reader span and rank, mention detection."""
        out = self.read(batch, table, settings)
        device = out.start.device
        rows = batch.candidates
        start_gold, end_gold = reader_targets(batch.windows, rows.cpu().numpy(), golds, self.window_size)
        start_gold = torch.as_tensor(start_gold, device=device)
        end_gold = torch.as_tensor(end_gold, device=device)
        is_gold = ~start_gold[..., 0]
        if settings.nil_negatives:
            unknown = torch.zeros(rows.shape, dtype=torch.bool, device=device)
        else:  # a NIL mention's listed entities: neither positive nor negative where it is
            unknown = torch.as_tensor(nil_candidates(batch.windows, rows.cpu().numpy(), golds, batch.matches),
                                      device=device)
        cand_mask = (rows >= 0) & ~unknown
        # window positives (and the unknowns, left out) over the distinct candidate rows (entity_vectors' columns)
        column = torch.searchsorted(out.entity_rows, rows.clamp(min=0))
        window_pos = torch.zeros((len(rows), len(out.entity_rows)), dtype=torch.bool, device=device)
        hit = is_gold & cand_mask
        window_pos[hit.nonzero()[:, 0], column[hit]] = True
        scale = self.retriever.scale
        window_logits = scale * batch.window_queries @ out.entity_vectors.T
        if unknown.any():
            window_unknown = torch.zeros_like(window_pos)
            window_unknown[unknown.nonzero()[:, 0], column[unknown]] = True
            window_logits = window_logits.masked_fill(window_unknown, float("-inf"))
        parts = {
            "reader_span": losses.span_loss(out.start, out.end, start_gold, end_gold, cand_mask),
            "reader_rank": losses.rank_loss(out.rank, is_gold, cand_mask),
            "retriever_window": losses.nce_loss(window_logits, window_pos),
        }
        position = {int(r): i for i, r in enumerate(out.entity_rows.tolist())}
        span_losses, mention_losses = [], []
        for d, gold in enumerate(golds):
            logits = batch.span_logits[d]
            n = logits.shape[0]
            if n:
                target = torch.as_tensor(mention_targets(gold, n, self.max_span_length), device=device)
                valid = torch.as_tensor(valid_spans(n, self.max_span_length), device=device)
                mention_losses.append(losses.mention_loss(logits, target, valid))
            gold_row = {(gs, ge - 1): row for gs, ge, row in gold if row in position}
            spans = [tuple(sp) for sp in batch.spans[d].tolist()]
            keep = [i for i, sp in enumerate(spans) if sp in gold_row]
            if keep:
                positives = torch.zeros((len(keep), len(position)), dtype=torch.bool, device=device)
                for j, i in enumerate(keep):
                    positives[j, position[gold_row[spans[i]]]] = True
                span_logits = scale * batch.span_queries[d][keep] @ out.entity_vectors.T
                span_losses.append(losses.nce_loss(span_logits, positives))
        if span_losses:
            parts["retriever_span"] = torch.stack(span_losses).mean()
        if mention_losses:
            parts["mention"] = torch.stack(mention_losses).mean()
        total = torch.stack(list(parts.values())).sum()
        return total, {name: value.item() for name, value in parts.items()}

    def links(self, batch: Batch, table: EntityTable, settings: RetrievalSettings, threshold: float,
              n_alternatives: int, windows_per_read: int = 64) -> List[List[Link]]:
        """Every (span, entity) above ``threshold``, per doc, in document token offsets (not yet de-overlapped).
        Windows are read ``windows_per_read`` at a time, so memory stays bounded on long docs."""
        found: List[List[Link]] = [[] for _ in range(batch.n_docs)]
        offsets = torch.tensor([s for _, s, _ in batch.windows], dtype=torch.long)
        for first in range(0, len(batch.windows), windows_per_read):
            part = slice(first, first + windows_per_read)
            out = self.read(batch, table, settings, part)
            for w, link in window_links(out.start, out.end, out.rank, batch.candidates[part], offsets[part],
                                        self.max_span_length, threshold, n_alternatives):
                found[batch.windows[first + w][0]].append(link)
        return found


def make_windows(n_tokens: int, size: int, stride: int) -> List[Tuple[int, int]]:
    """(start, end) windows covering ``n_tokens``: every ``stride`` tokens, the last one ending at the doc's end."""
    if n_tokens <= 0:
        return []
    if n_tokens <= size:
        return [(0, n_tokens)]
    starts = list(range(0, n_tokens - size, stride)) + [n_tokens - size]
    return [(s, s + size) for s in starts]
