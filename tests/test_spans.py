"""The wordpiece-budget span getter: windows of about equal wordpiece length, covering every token."""

import subprocess
import sys

import pytest
import spacy

from spacy_beer2.spans import budget_windows, configure_wordpiece_strided_spans, estimated_pieces


def test_estimated_pieces_follow_bert_style_splitting():
    assert [estimated_pieces(t) for t in ["the", "Vancouver", "internationalization", "1-0", "1996", "  ", "$"]] == \
        [1, 2, 4, 3, 2, 0, 1]


@pytest.mark.parametrize("costs", [[1] * 50, [3, 1, 1, 9, 1, 1, 0, 2] * 10, [1, 1, 200, 1, 1], [5], []])
def test_budget_windows_cover_every_token_within_the_budget(costs):
    windows = budget_windows(costs, window=8, stride=6)
    covered = set()
    for (s, e), following in zip(windows, windows[1:] + [None]):
        assert s < e and (sum(costs[s:e]) <= 8 or e - s == 1)
        if following is not None:
            assert s < following[0] <= e  # strictly advancing, never leaving a gap
        covered.update(range(s, e))
    assert covered == set(range(len(costs)))
    assert not costs or windows[-1][1] == len(costs)


def test_windows_of_a_table_are_no_longer_than_windows_of_prose():
    """The cause of super-linear long documents: strided_spans' windows of a results table hold far more
    wordpieces than those of prose, and a batch is padded to its longest window."""
    from spacy_transformers.span_getters import configure_strided_spans

    nlp = spacy.blank("en")
    prose = "Fans in Chicago cheered Jordan again while the team flew home after the game . " * 40
    table = "1. Gebrselassie ( Ethiopia ) 12:39.36 2. Kiptanui ( Kenya ) 12:48.98 avg .347 2,345,678 " * 20
    doc = nlp(prose + table + prose)

    def longest_over_mean(get_spans):
        pieces = [sum(estimated_pieces(t.text) for t in span) for span in get_spans([doc])[0]]
        return max(pieces) / (sum(pieces) / len(pieces))

    assert longest_over_mean(configure_strided_spans(window=64, stride=48)) > 1.5
    assert longest_over_mean(configure_wordpiece_strided_spans(window=64, stride=48)) < 1.1
    spans = configure_wordpiece_strided_spans(window=64, stride=48)([doc])[0]
    assert spans[0].start == 0 and spans[-1].end == len(doc)


def test_the_span_getter_is_found_through_its_entry_point_and_checks_its_settings():
    code = ("from spacy_transformers.util import registry; "
            "print(registry.span_getters.get('spacy-beer2.wordpiece_strided_spans.v1').__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "spacy_beer2.spans"
    with pytest.raises(ValueError, match="stride must be in 1..window"):
        configure_wordpiece_strided_spans(window=8, stride=9)
