"""Beer2Module: one batch through BEER2's two data flows.

    token states ─► windows ─► window queries ─┐
              └──► mention head ─► span queries ┴─► faiss top-K (+ golds and random negatives in training)
                                                      │ retriever → reader: fresh candidates every step
    window tokens + candidate vectors ─► reader ─► start / end / rank per candidate

Golds are (start, end-exclusive, KB row) token spans per doc; row -1 marks NIL or out-of-KB mentions, which are
neither positives nor negatives.
"""

import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from torch import nn

from . import losses
from .decoding import Link, window_links
from .index import EntityIndex
from .model import make_windows
from .reader import Reader
from .retriever import Retriever, merge_candidates, propose_spans

Gold = List[Tuple[int, int, int]]


@dataclass
class RetrievalSettings:
    n_candidates: int = 100  # reader candidates per window at prediction time (window + span queries, merged)
    n_train_candidates: int = 64  # reader candidates per window in training (golds forced in)
    n_span_candidates: int = 8  # top-K of each span query, added to its windows
    n_random_negatives: int = 4  # per window, in training
    span_retrieval: bool = True  # reader → retriever: predicted spans as extra queries
    mention_threshold: float = 0.2
    spans_per_token: float = 0.3  # cap on span queries per doc, relative to its length


@dataclass
class EntityTable:
    """What the module needs of the KB: base vectors and popularity feature, on the module's device."""

    base: torch.Tensor  # (N, H)
    popularity: torch.Tensor  # (N,)
    index: EntityIndex


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
    candidates: torch.Tensor = field(default=None)  # (W, C) KB rows, -1 = padding
    extra: Dict[str, torch.Tensor] = field(default_factory=dict)


class Beer2Module(nn.Module):
    def __init__(self, input_width: int, window_size: int, window_stride: int, max_span_length: int,
                 reader_width: int, reader_heads: int, reader_layers: int, dropout: float):
        super().__init__()
        self.window_size = window_size
        self.window_stride = window_stride
        self.max_span_length = max_span_length
        self.retriever = Retriever(input_width, max_span_length, dropout)
        self.reader = Reader(input_width, reader_width, reader_heads, reader_layers, window_size, dropout)

    # -- retriever side --------------------------------------------------------------------------------------------
    def prepare(self, states: Sequence[torch.Tensor], settings: RetrievalSettings,
                golds: Optional[Sequence[Gold]] = None) -> Batch:
        """Windows, window queries, mention scores and span queries of a batch of docs."""
        device = self.retriever.log_scale.device
        width = self.retriever.window_adapter.hidden.in_features
        flat = torch.cat([*states, torch.zeros((1, width), device=device)]) if states else torch.zeros((1, width))
        pad = flat.shape[0] - 1
        windows, token_rows = [], []
        offset = 0
        for d, doc_states in enumerate(states):
            for s, e in make_windows(len(doc_states), self.window_size, self.window_stride):
                windows.append((d, s, e))
                rows = list(range(offset + s, offset + e)) + [pad] * (self.window_size - (e - s))
                token_rows.append(rows)
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
                     span_logits, spans, span_queries)

    def retrieve(self, batch: Batch, table: EntityTable, settings: RetrievalSettings,
                 golds: Optional[Sequence[Gold]] = None,
                 fixed: Optional[Sequence[Optional[List[List[int]]]]] = None) -> None:
        """Fill ``batch.candidates``: the current index's top-K for every window query and span query.

        In training (``golds`` given) the golds of each window are forced in and random negatives added; with
        ``fixed`` (EntQA-style pipeline training) a doc's stored candidate lists are used instead of the index.
        """
        training = golds is not None
        k = settings.n_train_candidates if training else settings.n_candidates
        queries = batch.window_queries.detach().float().cpu().numpy()
        _, window_rows = table.index.search(queries, k)
        span_rows_by_window: List[List[numpy.ndarray]] = [[] for _ in batch.windows]
        n_spans = sum(len(spans) for spans in batch.spans)
        if settings.span_retrieval and settings.n_span_candidates > 0 and n_spans:
            queries = torch.cat(batch.span_queries).detach().float().cpu().numpy()
            _, span_rows = table.index.search(queries, settings.n_span_candidates)
            spans = torch.cat(batch.spans).cpu()
            span_doc = torch.cat([torch.full((len(s),), d) for d, s in enumerate(batch.spans)])
            for w, (d, ws, we) in enumerate(batch.windows):
                inside = ((span_doc == d) & (spans[:, 0] >= ws) & (spans[:, 1] < we)).nonzero().flatten().tolist()
                span_rows_by_window[w].extend(span_rows[i] for i in inside)
        n_kb = len(table.index)
        candidates = []
        first_window = {}
        for w, (d, s, e) in enumerate(batch.windows):
            first_window.setdefault(d, w)
            if fixed is not None and fixed[d] is not None:
                retrieved, span_rows = numpy.asarray(fixed[d][w - first_window[d]]), []
            else:
                retrieved, span_rows = window_rows[w], span_rows_by_window[w]
            if training:
                forced = [row for gs, ge, row in golds[d] if row >= 0 and gs >= s and ge <= e]
                randoms = random.sample(range(n_kb), min(settings.n_random_negatives, n_kb))
                candidates.append(merge_candidates(retrieved, span_rows, forced, k, randoms))
            else:
                candidates.append(merge_candidates(retrieved, span_rows, (), k))
        width = max((len(c) for c in candidates), default=0)
        table_rows = torch.full((len(candidates), width), -1, dtype=torch.long)
        for w, rows in enumerate(candidates):
            table_rows[w, : len(rows)] = torch.tensor(rows, dtype=torch.long)
        batch.candidates = table_rows.to(batch.window_queries.device)

    # -- reader side -----------------------------------------------------------------------------------------------
    def read(self, batch: Batch, table: EntityTable, windows: slice = slice(None)
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reader logits for a slice of the batch's windows, plus the entity vectors it read and their rows."""
        rows = batch.candidates[windows]
        unique, inverse = torch.unique(rows.clamp(min=0), return_inverse=True)
        entity_vectors = self.retriever.entity_vectors(table.base[unique])
        cands = entity_vectors[inverse]
        queries = batch.window_queries[windows]
        retrieval = torch.einsum("wch,wh->wc", cands, queries)
        features = torch.stack([retrieval, table.popularity[rows.clamp(min=0)]], dim=-1)
        tokens = batch.padded_states[batch.window_tokens[windows]]
        token_mask = batch.window_tokens[windows] < batch.padded_states.shape[0] - 1
        start, end, rank = self.reader(tokens, token_mask, cands, features, rows >= 0)
        return start, end, rank, entity_vectors, unique

    def loss(self, batch: Batch, table: EntityTable, golds: Sequence[Gold]) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The joint loss: retriever NCE (window and span queries), reader span and rank, mention detection."""
        start, end, rank, entity_vectors, unique = self.read(batch, table)
        device = start.device
        W, C, S1 = start.shape
        position = {int(r): i for i, r in enumerate(unique.tolist())}
        rows = batch.candidates
        start_gold = torch.zeros((W, C, S1), dtype=torch.bool, device=device)
        end_gold = torch.zeros_like(start_gold)
        window_pos = torch.zeros((W, len(unique)), dtype=torch.bool, device=device)
        rows_list = rows.tolist()
        for w, (d, s, e) in enumerate(batch.windows):
            column = {r: c for c, r in enumerate(rows_list[w]) if r >= 0}
            for gs, ge, row in golds[d]:
                if row >= 0 and gs >= s and ge <= e and row in column:
                    c = column[row]
                    start_gold[w, c, gs - s + 1] = True
                    end_gold[w, c, ge - 1 - s + 1] = True
                    window_pos[w, position[row]] = True
        is_gold = start_gold.any(-1)
        start_gold[..., 0] = ~is_gold
        end_gold[..., 0] = ~is_gold
        cand_mask = rows >= 0
        scale = self.retriever.scale
        parts = {
            "reader_span": losses.span_loss(start, end, start_gold, end_gold, cand_mask),
            "reader_rank": losses.rank_loss(rank, is_gold, cand_mask),
            "retriever_window": losses.nce_loss(scale * batch.window_queries @ entity_vectors.T, window_pos),
        }
        span_losses, mention_losses = [], []
        for d, gold in enumerate(golds):
            logits = batch.span_logits[d]
            target = torch.zeros_like(logits, dtype=torch.bool)
            ignore = torch.zeros_like(target)
            gold_row = {}
            for gs, ge, row in gold:
                if ge - gs <= self.max_span_length:
                    (target if row >= 0 else ignore)[gs, ge - gs - 1] = True
                if row >= 0:
                    gold_row[(gs, ge - 1)] = row
            if len(logits):
                mention_losses.append(losses.mention_loss(logits, target, ignore))
            spans = batch.spans[d].tolist()
            keep = [i for i, sp in enumerate(spans) if tuple(sp) in gold_row and gold_row[tuple(sp)] in position]
            if keep:
                positives = torch.zeros((len(keep), len(unique)), dtype=torch.bool, device=device)
                for j, i in enumerate(keep):
                    positives[j, position[gold_row[tuple(spans[i])]]] = True
                span_logits = scale * batch.span_queries[d][keep] @ entity_vectors.T
                span_losses.append(losses.nce_loss(span_logits, positives))
        if span_losses:
            parts["retriever_span"] = torch.stack(span_losses).mean()
        if mention_losses:
            parts["mention"] = torch.stack(mention_losses).mean()
        total = torch.stack(list(parts.values())).sum()
        return total, {name: value.item() for name, value in parts.items()}

    def links(self, batch: Batch, table: EntityTable, threshold: float, n_alternatives: int,
              chunk: int = 64) -> List[List[Link]]:
        """Every (span, entity) above ``threshold``, per doc, in document token offsets (not yet de-overlapped)."""
        found: List[List[Link]] = [[] for _ in range(batch.n_docs)]
        offsets = torch.tensor([s for _, s, _ in batch.windows], dtype=torch.long)
        for first in range(0, len(batch.windows), chunk):
            part = slice(first, first + chunk)
            start, end, rank, _, _ = self.read(batch, table, part)
            for w, link in window_links(start, end, rank, batch.candidates[part], offsets[part],
                                        self.max_span_length, threshold, n_alternatives):
                found[batch.windows[first + w][0]].append(link)
        return found
