"""Name evidence: the name-like spans of a doc, the keys of a name, and the per-position features."""

import numpy

from spacy_beer2.name_evidence import DocNames, name_features, name_keys

NAMES = {0: "Japan national football team", 1: "Brian Lara", 2: "The Beatles", 3: "Syria", 4: "Mercury (planet)",
         5: "National Hockey League"}


def keys(row):
    return name_keys(NAMES[row])


def test_doc_names_are_runs_of_capitalised_words_folded():
    names = DocNames("Japan beat Syria , said Brian Téllez of the Bank of New York Mellon and the Beatles".split(), 6)
    assert names.find(0, ("japan",)) == [(0, 1)]
    assert names.find(1, ("brian", "tellez")) == [(5, 7)]  # accents folded as the KB's names are
    assert names.find(0, ("bank", "of", "new", "york")) == [(9, 13)]  # minor words inside
    assert names.find(0, ("brian", "tellez", "of", "the", "bank")) == [(5, 10)]
    assert names.find(0, ("japan", "beat", "syria")) == []  # "beat" breaks a name
    assert names.find(0, ("the", "beatles")) == []  # "the" cannot begin one
    assert names.find(0, ("brian", "tellez", "of", "the", "bank", "of", "new")) == []  # longer than max_length
    assert DocNames(["Washington", ",", "D.C."], 4).find(0, ("washington", "d.c.")) == [(0, 3)]
    assert DocNames(["Lara", ".", "Lara"], 4).find(0, ("lara", ".", "lara")) == []  # no name runs across a stop


def test_doc_initials_are_its_all_capitals_tokens():
    names = DocNames("The NHL and Nhl , NATO-led U.S. AFPX1".split(), 4)
    assert names.find(3, ("nhl",)) == [(1, 2)]  # not "Nhl"
    assert names.find(3, ("nato",)) == names.find(3, ("us",)) == []


def test_name_keys_are_the_name_its_openings_and_its_endings():
    assert set(name_keys("Brian Lara")) == {(0, ("brian", "lara")), (1, ("brian",)), (2, ("lara",)), (3, ("bl",))}
    japan = name_keys("Japan national football team")
    assert (1, ("japan",)) in japan and (2, ("football", "team")) in japan and (0, ("japan", "national",
                                                                                  "football", "team")) in japan
    assert (1, ("the",)) not in name_keys("The Beatles")  # minor words alone are no evidence
    assert name_keys("Mercury (planet)") == ((0, ("mercury",)),)  # the qualifier is not part of the name
    assert name_keys("") == ()
    assert (3, ("nhl",)) in name_keys("National Hockey League")


def test_name_features_mark_where_the_window_writes_each_candidate_s_name():
    words = "Japan beat Syria , said Brian Lara . Lara and The Beatles of the NHL".split()
    windows = [(0, 0, 8), (0, 4, 12), (0, 7, 15)]
    candidates = numpy.array([[0, 1, 3, -1], [0, 1, 2, 4], [5, 1, -1, -1]])
    cand, start, end = name_features([DocNames(words, 10)], windows, candidates, keys, 8)
    assert cand.shape == (3, 4, 4) and start.shape == end.shape == (3, 4, 9, 4)
    # window 0: "Japan" (token 0) opens the team's name; "Brian Lara" (5-6) is Lara's name, "Lara" (6) its end
    assert cand[0, 0].tolist() == [0, 1, 0, 0]
    assert start[0, 0, 1].tolist() == [0, 1, 0, 0] and end[0, 0, 1].tolist() == [0, 1, 0, 0]
    assert cand[0, 1].tolist() == [1, 1, 1, 0]
    assert start[0, 1, 6].tolist() == [1, 1, 0, 0] and end[0, 1, 7].tolist() == [1, 0, 1, 0]
    assert cand[0, 2].tolist() == [1, 0, 0, 0] and start[0, 2, 3, 0] == 1  # "Syria" at token 2
    assert not cand[0, 3].any()  # padding
    # window 1 (tokens 4..11): Japan lies outside it; the second "Lara" (8) ends Lara's name; "The Beatles" (10-11)
    assert not cand[1, 0].any()
    assert end[1, 1, 5].tolist() == [0, 0, 1, 0]
    assert start[1, 2, 7].tolist() == [1, 0, 0, 0] and end[1, 2, 8].tolist() == [1, 0, 1, 0]
    assert not cand[1, 3].any()  # "Mercury" is not written
    # window 2 (tokens 7..14): "NHL" (14) is the league's initials
    assert cand[2, 0].tolist() == [0, 0, 0, 1] and start[2, 0, 8, 3] == end[2, 0, 8, 3] == 1
    assert start[:, :, 0].sum() == 0  # nothing in the no-answer slot
