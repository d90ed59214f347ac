import torch

from spacy_beer2.reader import NEG_INF, N_FEATURES, Reader


def make_inputs(W=2, S=5, C=3, H=8):
    torch.manual_seed(0)
    tokens = torch.randn(W, S, H)
    token_mask = torch.ones(W, S, dtype=torch.bool)
    token_mask[1, 3:] = False  # the second window is 3 tokens long
    cand_mask = torch.tensor([[True, True, False], [True, True, True]])
    priors = torch.zeros(W, C, S + 1, 2)
    types, features = torch.zeros(W, C, dtype=torch.long), torch.randn(W, C, N_FEATURES)
    return tokens, token_mask, torch.randn(W, C, H), types, features, cand_mask, priors, priors.clone()


def test_shapes_and_masks():
    reader = Reader(input_width=8, width=16, heads=2, layers=1, window_size=5, dropout=0.0).eval()
    start, end, rank = reader(*make_inputs())
    assert start.shape == end.shape == (2, 3, 6) and rank.shape == (2, 3)
    assert (start[1, :, 4:] == NEG_INF).all() and (end[1, :, 4:] == NEG_INF).all()  # padding tokens
    assert (start[:, :, 0] > NEG_INF).all()  # the no-answer slot is always open
    assert rank[0, 2] == NEG_INF and (rank[1] > NEG_INF).all()  # padding candidates


def test_padding_tokens_and_candidates_do_not_change_the_real_ones():
    reader = Reader(input_width=8, width=16, heads=2, layers=1, window_size=5, dropout=0.0).eval()
    inputs = list(make_inputs())
    start, end, rank = reader(*inputs)
    inputs[0] = inputs[0].clone()
    inputs[0][1, 3:] = 100.0  # garbage in the padded tokens of window 1
    inputs[2] = inputs[2].clone()
    inputs[2][0, 2] = 100.0  # and in the padding candidate of window 0
    start2, end2, rank2 = reader(*inputs)
    assert torch.allclose(start[0, :2], start2[0, :2], atol=1e-5)
    assert torch.allclose(rank[0, :2], rank2[0, :2], atol=1e-5)
    assert torch.allclose(start[1, :, :4], start2[1, :, :4], atol=1e-5)
