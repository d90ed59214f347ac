import pytest
import spacy
import torch

from spacy_beer2.decoding import Link, complete_spans, link_name_repeats, resolve, span_log_probs, window_links

NEG = -1e4


def logits(hot, size):
    """Logits putting (almost) all mass on position ``hot`` (0 = no answer)."""
    out = torch.full((size,), NEG)
    out[hot] = 10.0
    return out


def test_window_links_finds_the_span_of_each_confident_candidate():
    # one window of 5 tokens at document offset 10, two candidates (rows 7 and 3) and one padding slot
    start = torch.stack([logits(2, 6), logits(0, 6), logits(0, 6)]).unsqueeze(0)
    end = torch.stack([logits(3, 6), logits(0, 6), logits(0, 6)]).unsqueeze(0)
    rank = torch.tensor([[5.0, 0.0, NEG]])
    rows = torch.tensor([[7, 3, -1]])
    links = window_links(start, end, rank, rows, torch.tensor([10]), max_span_length=3, threshold=0.5,
                         n_alternatives=2)
    assert len(links) == 1
    w, link = links[0]
    assert (w, link.start, link.end, link.row) == (0, 11, 13, 7)  # tokens 1..2 of the window = doc 11..12
    assert 0.9 < link.score <= 1.0
    assert [row for row, _ in link.alternatives] == [7, 3]


def test_window_links_respects_max_span_length_and_threshold():
    start = logits(1, 6).view(1, 1, 6)
    end = logits(5, 6).view(1, 1, 6)  # a 5-token span
    args = (torch.zeros((1, 1)), torch.tensor([[0]]), torch.tensor([0]))
    assert window_links(start, end, *args, max_span_length=4, threshold=0.01, n_alternatives=0) == []
    assert len(window_links(start, end, *args, max_span_length=5, threshold=0.01, n_alternatives=0)) == 1
    # two equally ranked candidates: each has p_rank = 0.5, under a 0.6 threshold
    two = (start.expand(1, 2, 6), end.expand(1, 2, 6), torch.zeros((1, 2)), torch.tensor([[0, 1]]), torch.tensor([0]))
    assert len(window_links(*two, max_span_length=5, threshold=0.4, n_alternatives=0)) == 2
    assert window_links(*two, max_span_length=5, threshold=0.6, n_alternatives=0) == []


def test_resolve_keeps_best_per_span_then_non_overlapping_by_score():
    links = [
        Link(0, 2, 1, 0.4), Link(0, 2, 2, 0.6),  # same span from two windows: the better entity wins
        Link(1, 3, 5, 0.5),  # overlaps the 0.6 span: dropped although longer spans are not preferred
        Link(1, 2, 6, 0.3),  # overlaps too
        Link(4, 5, 7, 0.2),
    ]
    assert [(lk.start, lk.end, lk.row) for lk in resolve(links)] == [(0, 2, 2), (4, 5, 7)]
    # by score, not by length: a short confident span beats a long weak one
    assert [(lk.start, lk.end) for lk in resolve([Link(0, 4, 1, 0.2), Link(2, 3, 2, 0.9)])] == [(2, 3)]


def test_a_candidate_mentioned_twice_gives_two_links_not_one_span_across_both():
    """starts .6/.4, ends .4/.6: independent p_start * p_end scores the cross span 0..4 highest (.36)."""
    def probs(values):
        return torch.log(torch.tensor(values).clamp(min=1e-9)).view(1, 1, -1)

    start = probs([0.0, 0.6, 0.0, 0.0, 0.4, 0.0])  # position 0 = no answer; window tokens 0..4
    end = probs([0.0, 0.0, 0.4, 0.0, 0.0, 0.6])
    scores = span_log_probs(start, end).exp()[0, 0]
    assert float(scores[0, 1]) == pytest.approx(0.24) and float(scores[3, 4]) == pytest.approx(0.24)
    assert float(scores[0, 4]) == pytest.approx(0.36 * 0.6 * 0.6)  # both inner boundaries count against it
    found = window_links(start, end, torch.full((1, 1), 10.0), torch.tensor([[4]]), torch.tensor([0]),
                         max_span_length=10, threshold=0.1, n_alternatives=0)
    assert [(lk.start, lk.end) for lk in resolve(lk for _, lk in found)] == [(0, 2), (3, 5)]


def test_window_links_equal_scoring_every_span_of_every_candidate():
    """The pruned, banded decoding finds exactly the links (and alternatives) of the plain S x S definition."""
    import math

    from torch.nn import functional as F

    torch.manual_seed(0)
    W, C, S, L, threshold = 3, 7, 12, 4, 0.02
    start, end = torch.randn(W, C, S + 1) * 4, torch.randn(W, C, S + 1) * 4
    start[..., 0] -= 3.0  # some candidates confident, most not
    rank = torch.randn(W, C) * 3
    rows = torch.randint(0, 50, (W, C))
    rows[1, 5:] = -1
    offsets = torch.tensor([0, 8, 16])
    found = window_links(start, end, rank, rows, offsets, L, threshold, n_alternatives=3)
    full = span_log_probs(start, end) + F.logsigmoid(rank).view(W, C, 1, 1)
    i = torch.arange(S)
    band = (i.view(1, -1) >= i.view(-1, 1)) & (i.view(1, -1) - i.view(-1, 1) < L)
    full = full.masked_fill(~band, float("-inf")).masked_fill((rows < 0).view(W, C, 1, 1), float("-inf"))
    expected = [(w, int(offsets[w]) + s, int(offsets[w]) + e + 1, int(rows[w, c]), float(full[w, c, s, e].exp()))
                for w, c, s, e in (full > math.log(threshold)).nonzero().tolist()]
    assert len(expected) > 5
    assert [(w, lk.start, lk.end, lk.row) for w, lk in found] == [x[:4] for x in expected]
    assert [lk.score for _, lk in found] == pytest.approx([x[4] for x in expected], rel=1e-4)
    for w, lk in found:
        s, e = lk.start - int(offsets[w]), lk.end - 1 - int(offsets[w])
        top = torch.topk(full[w, :, s, e], 3)
        assert [r for r, _ in lk.alternatives] == [int(rows[w, j]) for p, j in zip(top.values, top.indices)
                                                   if rows[w, j] >= 0]


NAMES = {1: "Manchester United F.C.", 2: "Tokyo", 3: "Tokyo District Court", 4: "Gaza Strip (territory)",
         5: "Taha Yassin Ramadan", 6: "Kölner Dom"}


def _complete(text, links):
    doc = spacy.blank("en")(text)
    return [(lk.start, lk.end, lk.row) for lk in complete_spans(doc, links, NAMES.__getitem__)]


def test_complete_spans_merges_adjacent_links_of_one_entity_only():
    assert _complete("Manchester United won .", [Link(0, 1, 1, 0.4), Link(1, 2, 1, 0.6)]) == [(0, 2, 1)]
    assert _complete("Manchester United won .", [Link(0, 1, 2, 0.4), Link(1, 2, 1, 0.6)]) == [(0, 1, 2), (1, 2, 1)]
    # adjacent tokens with no space between them are not two words of one name
    assert _complete("Manchester's fans", [Link(0, 1, 1, 0.4), Link(1, 2, 1, 0.6)]) == [(0, 1, 1), (1, 2, 1)]


def test_complete_spans_grows_a_link_to_the_name_the_text_spells_out():
    # case aside, and the name without its qualifier
    assert _complete("Troops left the GAZA STRIP today .", [Link(3, 4, 4, 0.5)]) == [(3, 5, 4)]
    # without accents too
    assert _complete("They restored the Kolner Dom .", [Link(4, 5, 6, 0.5)]) == [(3, 5, 6)]
    # never onto part of a token, nor when the name is elsewhere in the doc
    assert _complete("The Gaza Striped flag .", [Link(1, 2, 4, 0.5)]) == [(1, 2, 4)]
    assert _complete("Gaza today ; Gaza Strip tomorrow .", [Link(0, 1, 4, 0.5)]) == [(0, 1, 4)]
    # a character that lower-cases to two ("İ") before the name does not shift where it is looked for
    assert _complete("İİİ : Gaza Strip", [Link(2, 3, 4, 0.5)]) == [(2, 4, 4)]


def test_a_grown_link_replaces_the_links_it_comes_to_overlap():
    # "Tokyo" scores higher on its own, but the court's full name is in the text
    assert _complete("the Tokyo District Court ruled", [Link(1, 2, 2, 0.9), Link(2, 4, 3, 0.3)]) == [(1, 4, 3)]
    # two parts of one name grow to the same span: one link
    assert _complete("Taha Yassin Ramadan said", [Link(0, 1, 5, 0.4), Link(2, 3, 5, 0.7)]) == [(0, 3, 5)]


PEOPLE = {1, 2}  # rows 1 and 2 are people, row 3 is not


def _repeats(text, links):
    doc = spacy.blank("en")(text)
    return [(lk.start, lk.end, lk.row) for lk in link_name_repeats(doc, links, PEOPLE.__contains__)]


def test_a_word_of_a_linked_persons_name_is_linked_where_it_stands_alone():
    text = "Tiger Woods won . WOODS said Tiger played well ."
    assert _repeats(text, [Link(0, 2, 1, 0.8)]) == [(0, 2, 1), (4, 5, 1), (6, 7, 1)]
    # not a person's name, or a word two linked people share
    assert _repeats(text, [Link(0, 2, 3, 0.8)]) == [(0, 2, 3)]
    assert _repeats("Tiger Woods and Ian Woods . Woods won", [Link(0, 2, 1, 0.8), Link(3, 5, 2, 0.7)]) == [
        (0, 2, 1), (3, 5, 2)]
    # not inside another name, nor a word the reader already linked
    assert _repeats("Tiger Woods won . Woods Hole said", [Link(0, 2, 1, 0.8)]) == [(0, 2, 1)]
    assert _repeats("Tiger Woods won . Woods said", [Link(0, 2, 1, 0.8), Link(4, 5, 3, 0.2)]) == [
        (0, 2, 1), (4, 5, 3)]
