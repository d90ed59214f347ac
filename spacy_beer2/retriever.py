"""The dense retriever: window and span queries, the mention head that proposes spans, and the entity adapter.

All vectors are L2-normalised, so faiss inner products are cosine similarities. The three adapters are residual
MLPs whose output layer starts at zero: at step 0 the retriever is exactly the pretrained sentence encoder's
similarity (mean-pooled states on both sides), and training moves it from there.
"""

from typing import List, Optional, Sequence, Tuple

import numpy
import torch
from torch import nn
from torch.nn import functional as F


class ResidualAdapter(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.hidden = nn.Linear(width, width)
        self.output = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + self.output(self.dropout(F.gelu(self.hidden(x)))), dim=-1)


class Retriever(nn.Module):
    def __init__(self, width: int, max_span_length: int, dropout: float):
        super().__init__()
        self.max_span_length = max_span_length
        self.window_adapter = ResidualAdapter(width, dropout)
        self.span_adapter = ResidualAdapter(width, dropout)
        self.entity_adapter = ResidualAdapter(width, dropout)
        self.boundaries = nn.Linear(width, 2)
        self.span_width = nn.Embedding(max_span_length, 1)
        nn.init.zeros_(self.span_width.weight)
        # NCE temperature, learned; starts at 1/20 as usual for cosine-similarity contrastive losses.
        self.log_scale = nn.Parameter(torch.full((1,), 3.0))  # shape (1,): Thinc optimizers skip 0-d arrays

    def window_queries(self, padded_states: torch.Tensor, window_tokens: torch.Tensor) -> torch.Tensor:
        """Mean of each window's token states (``window_tokens`` indexes ``padded_states``; its last row is 0)."""
        mask = (window_tokens < padded_states.shape[0] - 1).unsqueeze(-1).to(padded_states.dtype)
        pooled = (padded_states[window_tokens] * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.window_adapter(pooled)

    def span_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Mention scores of one doc's spans: entry [i, l] scores tokens i..i+l; impossible spans get -1e4."""
        n = states.shape[0]
        L = self.max_span_length
        bounds = self.boundaries(states)
        starts = torch.arange(n, device=states.device).unsqueeze(1)
        ends = starts + torch.arange(L, device=states.device).unsqueeze(0)
        valid = ends < n
        end_logits = bounds[:, 1][ends.clamp(max=max(n - 1, 0))]
        logits = bounds[:, 0].unsqueeze(1) + end_logits + self.span_width.weight.view(1, L)
        return logits.masked_fill(~valid, -1e4)

    def span_queries(self, states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """Mean of the token states of each (start, end-inclusive) span of one doc."""
        if not len(spans):
            return states.new_zeros((0, states.shape[1]))
        prefix = torch.cat([states.new_zeros((1, states.shape[1])), states.cumsum(0)])
        lengths = (spans[:, 1] - spans[:, 0] + 1).unsqueeze(1).to(states.dtype)
        return self.span_adapter((prefix[spans[:, 1] + 1] - prefix[spans[:, 0]]) / lengths)

    def entity_vectors(self, base: torch.Tensor) -> torch.Tensor:
        return self.entity_adapter(base)

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=100.0)[0]


def propose_spans(span_logits: torch.Tensor, threshold: float, max_spans: int) -> List[Tuple[int, int]]:
    """The doc's most likely mentions (start, end-inclusive): probability >= threshold, at most ``max_spans``."""
    probs = span_logits.detach().sigmoid().flatten()
    if not len(probs) or max_spans < 1:
        return []
    top = torch.topk(probs, min(max_spans, len(probs)))
    L = span_logits.shape[1]
    # one copy to the host: reading tensor elements one by one costs a device sync each on a GPU
    values, indices = top.values.tolist(), top.indices.tolist()
    return [(i // L, i // L + i % L) for p, i in zip(values, indices) if p >= threshold]


def split_titles(rows: Sequence[int], is_title: Optional[numpy.ndarray]) -> List[List[int]]:
    """Alias entities as two ranked lists for ``merge_candidates``: those that are more than a title, then the
    title-only ones (order kept in each). With a Wikipedia title list in the KB nearly every word of a window is some
    title with p(e|m) = 1; in one list those crowd out the entities of the prior table (testa, 5.9M entities:
    Recall@64 90.3 in one list, 94.6 in two)."""
    if is_title is None:
        return [list(rows)]
    return [[r for r in rows if not is_title[r]], [r for r in rows if is_title[r]]]


def merge_candidates(
    ranked: Sequence[Sequence[int]],
    forced: Sequence[int],
    limit: Optional[int],
    random_rows: Sequence[int] = (),
) -> List[int]:
    """One window's candidate list: forced (gold) rows first, then the ``ranked`` lists (alias entities, the
    window query's and its span queries' results) interleaved by rank, then random negatives; de-duplicated and
    padding (-1) dropped; at most ``limit`` (None: no limit), but forced rows are never cut."""
    seen = set()
    merged: List[int] = []

    def add(rows) -> None:
        for row in rows:
            row = int(row)
            if row >= 0 and row not in seen:
                seen.add(row)
                merged.append(row)

    add(forced)
    depth = max((len(r) for r in ranked), default=0)
    add(r[i] for i in range(depth) for r in ranked if i < len(r))
    if limit is not None:
        del merged[max(limit - len(random_rows), len(forced)) :]
    add(random_rows)
    return merged
