import numpy
import torch
from torch.nn import functional as F

from spacy_beer2.retriever import Retriever, merge_candidates, propose_spans, split_titles


def test_adapters_start_as_normalised_identity():
    torch.manual_seed(0)
    retriever = Retriever(width=8, max_span_length=3, dropout=0.0).eval()
    x = torch.randn(5, 8)
    assert torch.allclose(retriever.entity_vectors(x), F.normalize(x, dim=-1), atol=1e-6)
    # a window query is the normalised mean of its real tokens; row 5 of the padded states is padding
    padded = torch.cat([x, torch.zeros((1, 8))])
    query = retriever.window_queries(padded, torch.tensor([[0, 1, 5]]))
    assert torch.allclose(query[0], F.normalize(x[:2].mean(0), dim=-1), atol=1e-6)
    span = retriever.span_queries(x, torch.tensor([[1, 3]]))
    assert torch.allclose(span[0], F.normalize(x[1:4].mean(0), dim=-1), atol=1e-6)


def test_span_logits_mask_spans_past_the_end():
    retriever = Retriever(width=4, max_span_length=3, dropout=0.0)
    logits = retriever.span_logits(torch.randn(2, 4))
    assert logits.shape == (2, 3)
    assert (logits[1, 1:] == -1e4).all() and (logits[0, 2] == -1e4) and logits[0, 1] > -1e3


def test_propose_spans_threshold_and_cap():
    logits = torch.tensor([[5.0, -5.0], [4.0, 3.0], [-5.0, -1e4]])
    assert propose_spans(logits, 0.5, 10) == [(0, 0), (1, 1), (1, 2)]
    assert propose_spans(logits, 0.5, 1) == [(0, 0)]
    assert propose_spans(torch.zeros((0, 2)), 0.5, 3) == []


def test_title_only_alias_entities_get_a_list_of_their_own():
    is_title = numpy.array([False, True, True, False, True])
    # p(e|m) order: three unique titles (p = 1) before the prior table's entities 0 and 3
    aliases = [1, 2, 4, 0, 3]
    assert split_titles(aliases, is_title) == [[0, 3], [1, 2, 4]]
    assert split_titles(aliases, None) == [aliases]
    window = [7, 8, 9]
    # interleaved, the rich ones reach a list of 4 that the titles would have filled as one list
    assert merge_candidates([*split_titles(aliases, is_title), window], forced=(), limit=4) == [0, 1, 7, 3]
    assert merge_candidates([aliases, window], forced=(), limit=4) == [1, 7, 2, 8]


def test_merge_candidates_forced_first_interleaved_deduplicated_and_capped():
    window = numpy.array([10, 11, 12, 13])
    spans = [numpy.array([20, 10, 21])]
    assert merge_candidates([window, *spans], forced=[99], limit=None) == [99, 10, 20, 11, 12, 21, 13]
    assert merge_candidates([window, *spans], forced=[99], limit=4, random_rows=[50]) == [99, 10, 20, 50]
    assert merge_candidates([numpy.array([-1, 5])], forced=(), limit=None) == [5]
    # alias entities come first at each rank; forced rows are never cut
    assert merge_candidates([[7, 8], window], forced=[1, 2, 3], limit=2) == [1, 2, 3]
    assert merge_candidates([[7, 8], window], forced=[], limit=3) == [7, 10, 8]
