"""The joint BEER2 objective: retriever NCE, the reader's span and rank likelihoods, and the mention loss."""

import torch
from torch.nn import functional as F


def nce_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Multi-positive NCE: each positive of a query against all of that query's negatives.

    logits, positives: (Q, M); ``positives`` is a bool mask. Queries without a positive contribute nothing.
    """
    if not positives.any():
        return logits.sum() * 0.0
    neg_lse = torch.logsumexp(logits.masked_fill(positives, float("-inf")), dim=1, keepdim=True)
    per_pair = -logits + torch.logaddexp(logits, neg_lse.expand_as(logits))
    return per_pair[positives].mean()


def span_loss(start: torch.Tensor, end: torch.Tensor, start_gold: torch.Tensor, end_gold: torch.Tensor,
              cand_mask: torch.Tensor) -> torch.Tensor:
    """EntQA's reader loss: -log of the probability mass on the gold starts (ends) of each candidate.

    start, end: (W, C, S+1) logits; *_gold: bool masks of the same shape, index 0 (no answer) set for candidates
    not mentioned in the window; cand_mask: (W, C) real candidates.
    """
    if not cand_mask.any():
        return start.sum() * 0.0
    start_lp = start.log_softmax(-1)
    end_lp = end.log_softmax(-1)
    start_nll = -torch.logsumexp(start_lp.masked_fill(~start_gold, float("-inf")), dim=-1)
    end_nll = -torch.logsumexp(end_lp.masked_fill(~end_gold, float("-inf")), dim=-1)
    return (start_nll + end_nll)[cand_mask].mean()


def rank_loss(rank: torch.Tensor, gold: torch.Tensor, cand_mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of "is this candidate mentioned in the window" over the real candidates.

    A sigmoid rather than EntQA's softmax over candidates: with several entities in one window a softmax splits
    its mass between them, and every gold but the top one falls under the decoding threshold.
    """
    if not cand_mask.any():
        return rank.sum() * 0.0
    return F.binary_cross_entropy_with_logits(rank[cand_mask], gold[cand_mask].to(rank.dtype))


def mention_loss(logits: torch.Tensor, gold: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the ``valid`` spans of a doc (those that end inside it)."""
    if not valid.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], gold[valid].to(logits.dtype))
