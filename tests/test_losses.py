import math

import torch

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
