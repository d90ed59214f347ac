import numpy

from spacy_beer2.targets import mention_targets, nil_candidates, reader_targets, valid_spans


def test_reader_targets_offsets_and_no_answer_slot():
    windows = [(0, 0, 4), (0, 4, 8), (1, 0, 3)]
    candidates = numpy.array([[5, 6, -1], [6, 5, 9], [5, -1, -1]])
    golds = [[(1, 3, 5), (2, 3, 6), (5, 6, 6), (3, 5, 5), (0, 1, -1)], [(0, 2, 9)]]
    start, end = reader_targets(windows, candidates, golds, window_size=4)
    # row 5 mentioned at tokens 1..2 of window 0: start at position 2 (1 + the no-answer slot), end at position 3
    assert start[0, 0].tolist() == [False, False, True, False, False]
    assert end[0, 0].tolist() == [False, False, False, True, False]
    # row 6 at token 2; (3, 5) crosses the window edge and is no target in either window
    assert start[0, 1].tolist() == [False, False, False, True, False]
    # window 1: row 6 at doc token 5 = window token 1; row 5 not mentioned there; row 9 is in another doc
    assert start[1, 0, 2] and start[1, 1, 0] and start[1, 2, 0] and end[1, 1, 0]
    # NIL (-1) is never a target; padding candidates get the no-answer slot (the loss masks them)
    assert start[2, 0, 0] and start[2, 1, 0]


def test_a_candidate_mentioned_twice_has_two_starts_and_ends():
    start, end = reader_targets([(0, 0, 6)], numpy.array([[3]]), [[(0, 1, 3), (3, 5, 3)]], window_size=6)
    assert numpy.flatnonzero(start[0, 0]).tolist() == [1, 4]
    assert numpy.flatnonzero(end[0, 0]).tolist() == [1, 5]


def test_mention_targets_include_nil_mentions_and_skip_long_ones():
    target = mention_targets([(0, 2, 4), (3, 4, -1), (4, 9, 1)], n_tokens=9, max_span_length=3)
    assert numpy.argwhere(target).tolist() == [[0, 1], [3, 0]]
    assert valid_spans(3, 2).tolist() == [[True, True], [True, True], [True, False]]


def test_nil_candidates_are_the_entities_listed_for_a_nil_mention_unless_gold_in_the_window():
    from spacy_beer2.aliases import DocMatches

    windows = [(0, 0, 4), (0, 4, 8)]
    candidates = numpy.array([[5, 6, 7, -1], [5, 6, 7, 8]])
    # tokens 1..2 are a NIL mention whose surface lists rows 5 and 7; row 7 is gold at token 3; row 6 is listed for
    # a span that is no NIL mention; row 8 is listed for a NIL mention of window 1
    golds = [[(1, 3, -1), (3, 4, 7), (5, 6, -1)]]
    matches = [DocMatches([(1, 3, (5, 7), (0.6, 0.4)), (2, 3, (6,), (1.0,)), (5, 6, (8,), (1.0,))])]
    unknown = nil_candidates(windows, candidates, golds, matches)
    assert unknown.tolist() == [[True, False, False, False], [False, False, False, True]]
    assert not nil_candidates(windows, candidates, [[(1, 3, 5)]], matches).any()  # no NIL, nothing unknown
