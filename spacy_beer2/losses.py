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
    """The reader's boundary loss: the mean of -log p over the gold starts (ends) of each candidate.

    EntQA takes -log of the summed mass on the gold starts instead, which a candidate mentioned twice in a window
    satisfies with the first mention's start and the second one's end, i.e. by learning the span across both. The
    mean asks for every mention's boundaries. start, end: (W, C, S+1) logits; *_gold: bool masks of the same shape,
    index 0 (no answer) set for candidates not mentioned in the window; cand_mask: (W, C) real candidates.
    """
    if not cand_mask.any():
        return start.sum() * 0.0
    start_nll = _mean_nll(start.log_softmax(-1), start_gold)
    end_nll = _mean_nll(end.log_softmax(-1), end_gold)
    return (start_nll + end_nll)[cand_mask].mean()


def _mean_nll(log_probs: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Mean -log p over the gold positions of the last axis (0 where there is none)."""
    return -(log_probs.masked_fill(~gold, 0.0)).sum(-1) / gold.sum(-1).clamp(min=1)


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
