"""The reader: for every candidate of a window, where is it mentioned (start/end) and how likely is it (rank).

EntQA re-encodes each (window, candidate) pair, K passes per window. Here all candidates of a window are read in
one pass: the window's token states and the candidate vectors are concatenated into one sequence for a small fusion
transformer (the ReLiK layout), and per-candidate start/end distributions come from bilinear scores between each
fused candidate and each fused token. Position 0 of every window is a learned "no answer" slot.
"""

from typing import Tuple

import torch
from torch import nn

from .kb import TYPE_BUCKETS
from .name_evidence import NAME_RELATIONS

NEG_INF = -1e4
N_FEATURES = 4  # retrieval score, popularity, best p(e|m) in the window, is an alias in the window


class Reader(nn.Module):
    def __init__(self, input_width: int, width: int, heads: int, layers: int, window_size: int, dropout: float,
                 name_evidence: bool = False):
        super().__init__()
        self.width = width
        # name evidence (name_evidence.py): whether a window writes the candidate's name, its first or last words
        # or its initials, beside each p(e|m) / is-an-alias pair
        self.name_evidence = name_evidence
        n_names = len(NAME_RELATIONS) if name_evidence else 0
        self.token_in = nn.Sequential(nn.Linear(input_width, width), nn.LayerNorm(width))
        self.candidate_in = nn.Sequential(nn.Linear(input_width, width), nn.LayerNorm(width))
        # Candidate features: retrieval score, popularity, and the best p(e|m) / is-an-alias of the entity in the
        # window; its type goes in as a (hashed) embedding.
        self.features_in = nn.Linear(N_FEATURES + n_names, width)
        self.types = nn.Embedding(TYPE_BUCKETS, width)
        # p(e|m) / is-an-alias of aliases starting (ending) at a position: direct evidence for the span scores.
        self.start_prior = nn.Linear(2 + n_names, 1, bias=False)
        self.end_prior = nn.Linear(2 + n_names, 1, bias=False)
        # Start from "an alias boundary is likely a mention boundary" (a name part: no view yet); training sets how
        # far to trust each.
        for boundary in (self.start_prior, self.end_prior):
            nn.init.zeros_(boundary.weight)
            nn.init.constant_(boundary.weight[:, :2], 1.0)
        self.null = nn.Parameter(torch.zeros(width))
        self.positions = nn.Embedding(window_size + 1, width)
        self.segment = nn.Embedding(2, width)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
        self.fusion = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.start_tokens = nn.Linear(width, width)
        self.start_cands = nn.Linear(width, width)
        self.end_tokens = nn.Linear(width, width)
        self.end_cands = nn.Linear(width, width)
        self.rank = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, 1))

    def forward(
        self,
        tokens: torch.Tensor,  # (W, S, H) window token states
        token_mask: torch.Tensor,  # (W, S) bool, True for real tokens
        entities: torch.Tensor,  # (U, H) the distinct candidate entities' vectors
        cand_index: torch.Tensor,  # (W, C) row of each candidate in ``entities`` (any row for padding)
        cand_types: torch.Tensor,  # (W, C) type buckets
        cand_features: torch.Tensor,  # (W, C, N_FEATURES [+ R name relations])
        cand_mask: torch.Tensor,  # (W, C) bool, True for real candidates
        start_priors: torch.Tensor,  # (W, C, S+1, 2 [+ R]) alias (and name) evidence per start position
        end_priors: torch.Tensor,  # (W, C, S+1, 2 [+ R]) alias (and name) evidence per end position
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Start and end logits (W, C, S+1; index 0 = no answer) and rank logits (W, C)."""
        W, S, _ = tokens.shape
        C = cand_index.shape[1]
        device = tokens.device
        tok = self.token_in(tokens) + self.positions(torch.arange(1, S + 1, device=device)) + self.segment.weight[0]
        null = (self.null + self.positions.weight[0] + self.segment.weight[0]).expand(W, 1, self.width)
        # projected once per distinct entity, not once per (window, candidate): overlapping windows share most
        projected = self.candidate_in(entities) if len(entities) else entities.new_zeros((1, self.width))
        cand = projected[cand_index] + self.features_in(cand_features) + self.types(cand_types) + self.segment.weight[1]
        seq = torch.cat([null, tok, cand], dim=1)
        keep = torch.cat([token_mask.new_ones((W, 1)), token_mask, cand_mask], dim=1)
        fused = self.fusion(seq, src_key_padding_mask=~keep)
        fused_tok, fused_cand = fused[:, : S + 1], fused[:, S + 1 :]
        scale = self.width**-0.5
        start = torch.einsum("wcd,wsd->wcs", self.start_cands(fused_cand), self.start_tokens(fused_tok)) * scale
        end = torch.einsum("wcd,wsd->wcs", self.end_cands(fused_cand), self.end_tokens(fused_tok)) * scale
        start = start + self.start_prior(start_priors).squeeze(-1)
        end = end + self.end_prior(end_priors).squeeze(-1)
        span_mask = torch.cat([token_mask.new_ones((W, 1)), token_mask], dim=1).unsqueeze(1)
        start = start.masked_fill(~span_mask, NEG_INF)
        end = end.masked_fill(~span_mask, NEG_INF)
        pooled = fused_tok[:, 0:1].expand(W, C, self.width)
        rank = self.rank(torch.cat([fused_cand, pooled * fused_cand], dim=-1)).squeeze(-1)
        rank = rank.masked_fill(~cand_mask, NEG_INF)
        return start, end, rank
