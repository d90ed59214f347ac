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
    entities = torch.randn(4, H)  # the distinct candidates; window 1 shares entity 1 with window 0
    cand_index = torch.tensor([[0, 1, 0], [2, 1, 3]])
    return tokens, token_mask, entities, cand_index, types, features, cand_mask, priors, priors.clone()


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
    inputs[2] = torch.cat([inputs[2], torch.full((1, 8), 100.0)])
    inputs[3] = inputs[3].clone()
    inputs[3][0, 2] = 4  # and in the padding candidate of window 0
    start2, end2, rank2 = reader(*inputs)
    assert torch.allclose(start[0, :2], start2[0, :2], atol=1e-5)
    assert torch.allclose(rank[0, :2], rank2[0, :2], atol=1e-5)
    assert torch.allclose(start[1, :, :4], start2[1, :, :4], atol=1e-5)


def test_a_candidate_reads_the_same_whether_its_entity_is_shared_or_repeated():
    """Windows index one row per distinct entity; giving each (window, candidate) its own copy changes nothing."""
    reader = Reader(input_width=8, width=16, heads=2, layers=1, window_size=5, dropout=0.0).eval()
    inputs = list(make_inputs())
    shared = reader(*inputs)
    entities, cand_index = inputs[2], inputs[3]
    inputs[2], inputs[3] = entities[cand_index.view(-1)], torch.arange(cand_index.numel()).view(cand_index.shape)
    repeated = reader(*inputs)
    for a, b in zip(shared, repeated):
        assert torch.allclose(a, b, atol=1e-5)
    inputs[2] = inputs[2].clone()
    inputs[2][4] += 1.0  # window 1's second candidate (entity 1, shared with window 0) changes in window 1 alone
    changed = reader(*inputs)
    assert torch.allclose(changed[2][0], shared[2][0], atol=1e-5) and not torch.allclose(changed[2][1], shared[2][1])
