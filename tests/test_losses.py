import math

import torch

from spacy_beer2.decoding import span_log_probs
from spacy_beer2.losses import mention_loss, nce_loss, rank_loss, span_loss


def test_nce_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    positives = torch.tensor([[True, False, False], [False, False, False]])  # the 2nd query has no positive
    expected = -2.0 + math.log(math.exp(2.0) + math.exp(1.0) + math.exp(0.0))
    assert math.isclose(nce_loss(logits, positives).item(), expected, rel_tol=1e-6)


def test_nce_loss_multi_positive_excludes_other_positives_from_negatives():
    logits = torch.tensor([[1.0, 1.0, 0.0]])
    positives = torch.tensor([[True, True, False]])
    expected = -1.0 + math.log(math.exp(1.0) + 1.0)
    assert math.isclose(nce_loss(logits, positives).item(), expected, rel_tol=1e-6)


def test_losses_without_targets_are_zero_but_differentiable():
    x = torch.zeros((2, 3), requires_grad=True)
    none = torch.zeros((2, 3), dtype=torch.bool)
    for loss in (nce_loss(x, none), rank_loss(x, none, none)):
        assert loss.item() == 0.0
        loss.backward()


def test_span_and_rank_losses_prefer_the_gold():
    gold = torch.zeros((1, 1, 4), dtype=torch.bool)
    gold[0, 0, 2] = True
    good = torch.tensor([[[0.0, 0.0, 9.0, 0.0]]])
    bad = torch.tensor([[[9.0, 0.0, 0.0, 0.0]]])
    mask = torch.ones((1, 1), dtype=torch.bool)
    assert span_loss(good, good, gold, gold, mask) < 0.01 < span_loss(bad, bad, gold, gold, mask)
    rank_gold = torch.tensor([[False, True, True]])
    real = torch.tensor([[True, True, True]])
    # each gold is judged on its own: two confident golds are not penalised for sharing the window
    assert rank_loss(torch.tensor([[-5.0, 5.0, 5.0]]), rank_gold, real) < 0.01
    assert rank_loss(torch.tensor([[5.0, -5.0, 5.0]]), rank_gold, real) > 1.0
    # padding candidates do not count
    assert rank_loss(torch.tensor([[9.0, 5.0, 5.0]]), rank_gold, torch.tensor([[False, True, True]])) < 0.01


def test_mention_loss_counts_only_valid_spans():
    logits = torch.tensor([[3.0, 7.0], [-3.0, 0.0]])
    gold = torch.tensor([[True, False], [False, False]])
    valid = torch.tensor([[True, False], [True, False]])
    expected = (math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-3.0))) / 2
    assert math.isclose(mention_loss(logits, gold, valid).item(), expected, rel_tol=1e-5)


def test_a_candidate_mentioned_twice_learns_both_mentions_not_the_span_across_them():
    """Bug 1b, training side: the reader starts out on the span across two mentions of one candidate (all start mass
    on the first mention, all end mass on the second). Trained with the span loss, decoding must then prefer each
    true mention to that cross span."""
    S = 8
    start_gold = torch.zeros((1, 1, S + 1), dtype=torch.bool)
    end_gold = torch.zeros_like(start_gold)
    start_gold[0, 0, [2, 6]] = True  # mentions at tokens 1..2 and 5..6 (position 0 is "no answer")
    end_gold[0, 0, [3, 7]] = True
    start = torch.full((1, 1, S + 1), -5.0)
    end = torch.full((1, 1, S + 1), -5.0)
    start[0, 0, 2], end[0, 0, 7] = 5.0, 5.0  # the cross span 1..6
    start.requires_grad_(True)
    end.requires_grad_(True)
    optimizer = torch.optim.SGD([start, end], lr=1.0)
    mask = torch.ones((1, 1), dtype=torch.bool)
    for _ in range(100):
        optimizer.zero_grad()
        span_loss(start, end, start_gold, end_gold, mask).backward()
        optimizer.step()
    log_p = span_log_probs(start.detach(), end.detach())[0, 0]  # (S, S), token positions
    assert log_p[1, 2] > log_p[1, 6] and log_p[5, 6] > log_p[1, 6]
