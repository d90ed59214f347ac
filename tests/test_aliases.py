import numpy
import pytest
import srsly

from spacy_beer2.aliases import (AcronymIndex, AliasTable, DocMatches, NamePartIndex, acronyms, build_candidate_table,
                                 contiguous_folds, count_pair_docs, expand_short_names, find_acronym_matches,
                                 find_matches, find_name_part_matches, fold, held_out_golds, is_name_part,
                                 name_relation, normalize_surface, prior_features, sample_golds, show_title_priors,
                                 title_surfaces, unqualified, window_alias_rows, without_pairs)
from spacy_beer2.kb import Entity, KBError, KnowledgeBase


@pytest.fixture
def kb():
    return KnowledgeBase([Entity("England", "England"), Entity("England cricket team", "England cricket team"),
                          Entity("San Jose, California", "San Jose, California"),
                          Entity("Paris (band)", "Paris (band)"), Entity("paris", "paris")])


def test_load_maps_surfaces_and_names_bad_lines(tmp_path):
    path = tmp_path / "aliases.jsonl"
    srsly.write_jsonl(path, [{"alias": "England ", "entities": [["England", 0.6], ["England cricket team", 0.4]]}])
    assert AliasTable.load(path).entries == {"england": [("England", 0.6), ("England cricket team", 0.4)]}
    path.write_text('{"alias": "a", "entities": [["A", 1.0]]}\n{"alias": "b", "entities": [["B", 1.5]]}\n')
    with pytest.raises(KBError, match=r"aliases.jsonl:2: bad entity pair"):
        AliasTable.load(path)
    path.write_text('{"alias": "a", "entities": [["A", 1.0]]}\n\n{"alias": ""}\n')
    with pytest.raises(KBError, match=r"aliases.jsonl:3: expected an object"):
        AliasTable.load(path)


def test_candidate_table_merges_the_prior_with_the_kb_names(kb):
    prior = AliasTable({"england": [("England cricket team", 0.7), ("England", 0.3), ("Not in KB", 0.1)]})
    table = build_candidate_table(kb, prior, per_alias=10)
    assert table["england"] == ((1, 0), (0.7, 0.3))  # unknown ids dropped, sorted by p(e|m)
    assert table["england cricket team"] == ((1,), (1.0,))  # a name: uniform among the entities that share it
    assert table["paris"] == ((3, 4), (0.5, 0.5))  # "Paris (band)" without its qualifier, and the title "paris"
    assert build_candidate_table(kb, prior, per_alias=1)["england"] == ((1,), (0.7,))
    # a name beside a prior-table surface joins it with p = 0
    prior = AliasTable({"paris": [("paris", 1.0)]})
    assert build_candidate_table(kb, prior, per_alias=10)["paris"] == ((4, 3), (1.0, 0.0))


def test_find_matches_on_tokens(kb):
    table = build_candidate_table(kb, None, per_alias=10)
    words = ["In", "SAN", "JOSE", ",", "CALIFORNIA", " ", "England", "won"]
    spaces = [True, True, False, True, False, False, True, False]
    matches = find_matches(words, spaces, table, max_length=4)
    # "San Jose, California" is matched in full and, without its qualifier, as "SAN JOSE"
    assert [(s, e, rows) for s, e, rows, _ in matches] == [(1, 3, (2,)), (1, 5, (2,)), (6, 7, (0,))]
    assert find_matches(words, spaces, table, max_length=3) == [(1, 3, (2,), (1.0,)), (6, 7, (0,), (1.0,))]


def test_name_part_index_finds_names_that_continue_a_surface_by_whole_words():
    kb = KnowledgeBase([Entity("Belgium", "Belgium", popularity=6.0),
                        Entity("Belgium Fed Cup team", "Belgium Fed Cup team", popularity=1.0),
                        Entity("Belgium national football team", "Belgium national football team", popularity=3.0),
                        Entity("Belgiumx", "Belgiumx", popularity=9.0),
                        Entity("belgium (band)", "belgium (band)"), Entity("belgium 2", "belgium 2"),
                        Entity("Q9", "Republic of Ireland national football team"),
                        Entity("arlington, texas", "arlington, texas"), Entity("Adam Hollioake", "Adam Hollioake")])
    index = NamePartIndex(kb)
    # whole words only (not "Belgiumx"), never the name itself; by popularity, then the shorter title
    assert index.lookup("Belgium", 10) == (2, 1, 5, 4)
    assert index.lookup("BELGIUM", 2) == (2, 1)
    assert index.lookup("Republic of Ireland", 3) == (6,)  # a rich entity is found by its name, not its id
    assert index.lookup("Arlington", 3) == (7,)  # a comma breaks words
    assert index.lookup("Belgium national football team", 3) == ()
    assert index.lookup("", 3) == () and index.lookup("Belgium", 0) == ()
    assert index.lookup("Hollioake", 3) == ()
    from_end = NamePartIndex(kb, from_end=True)
    assert from_end.lookup("Hollioake", 3) == (8,) and from_end.lookup("Texas", 3) == (7,)
    assert from_end.lookup("team", 3) == (2, 1, 6)
    assert from_end.lookup("Adam", 3) == ()


def test_name_relation_says_which_part_of_the_name_a_surface_is():
    assert name_relation("BELGIUM", "Belgium national football team") == "name_start"
    assert name_relation("Hollioake", "Adam Hollioake") == "name_end"
    assert name_relation("Arlington", "Arlington, Texas") == "name_start"
    assert name_relation("Mercury", "Mercury (planet)") == "name"
    assert name_relation("Téllez", "Norberto Tellez") == "name_end"
    assert name_relation("Dutch", "Netherlands") == "other"
    assert name_relation("national", "Belgium national football team") == "other"  # inside, neither end
    assert name_relation("Belgiumx", "Belgium national football team") == "other"  # whole words only
    assert name_relation("Belgium national football team", "Belgium") == "other"


def test_name_part_matches_are_capitalised_spans_at_zero_prior():
    kb = KnowledgeBase([Entity("Belgium national football team", "Belgium national football team"),
                        Entity("Republic of Ireland national football team",
                               "Republic of Ireland national football team"),
                        Entity("beat generation", "beat generation"), Entity("Adam Hollioake", "Adam Hollioake")])
    starts, ends = NamePartIndex(kb), NamePartIndex(kb, from_end=True)
    words = ["BELGIUM", "beat", "the", "Republic", "of", "Ireland", "and", "Hollioake", "."]
    spaces = [True] * 8 + [False]
    matches = find_name_part_matches(words, spaces, starts, ends, max_length=3, k=2)
    # "beat" starts lower-case (it begins a name all the same); a span never ends on "of"
    assert matches == [(0, 1, (0,), (0.0,)), (3, 4, (1,), (0.0,)), (3, 6, (1,), (0.0,)), (7, 8, (3,), (0.0,))]
    assert find_name_part_matches(words, spaces, starts, ends, max_length=2, k=2) == [matches[i] for i in (0, 1, 3)]
    assert find_name_part_matches(words, spaces, starts, None, max_length=3, k=2) == matches[:3]
    # "Adam" begins a name, "Hollioake" ends it; "Adam Hollioake" is the whole name, no part of it
    words = ["Adam", "Hollioake", "and", "Ben", "Hollioake"]
    assert find_name_part_matches(words, [True] * 5, starts, ends, max_length=3, k=2) == [
        (0, 1, (3,), (0.0,)), (1, 2, (3,), (0.0,)), (4, 5, (3,), (0.0,))]


def test_name_part_matches_equal_looking_up_every_span():
    """Growing a span stops once no name goes on with it: the result is that of looking up every span."""
    names = ["New York Knicks", "New York City FC", "York University", "New Zealand national rugby union team",
             "Union Berlin", "Real Madrid C.F.", "Madrid Open", "City of London", "London Irish", "New York-based",
             "Berlin-Tegel Airport", "Great Anglo-Union"]
    kb = KnowledgeBase([Entity(name, name) for name in names])
    starts, ends = NamePartIndex(kb), NamePartIndex(kb, from_end=True)
    vocab = ["New", "York", "City", "Real", "Madrid", "London", "Irish", "of", "Union", "Berlin", "team", "-based",
             "-", "Tegel", "Anglo"]
    # no name goes on with "Berlin" (or ends with "Union") by a whole word, but one does past the hyphen ("Berlin"
    # ends "Union Berlin", "Union" begins it)
    assert find_name_part_matches(["Berlin", "-", "Tegel"], [False, False, True], starts, ends, 4, 3) == [
        (0, 1, (4,), (0.0,)), (0, 3, (10,), (0.0,))]
    assert find_name_part_matches(["Anglo", "-", "Union"], [False, False, True], starts, ends, 4, 3) == [
        (0, 3, (11,), (0.0,)), (2, 3, (4,), (0.0,))]
    rng = numpy.random.default_rng(0)
    for _ in range(200):
        words = [str(w) for w in rng.choice(vocab, size=int(rng.integers(1, 9)))]
        spaces = [bool(b) for b in rng.random(len(words)) < 0.8]
        expected = []
        for start in range(len(words)):
            for end in range(start + 1, min(len(words), start + 4) + 1):
                if words[start][0].isupper() and words[end - 1][0].isupper():
                    surface = "".join(w + (" " if sp else "") for w, sp in zip(words[start:end], spaces[start:end]))
                    rows = list(starts.lookup(surface, 3))
                    rows += [r for r in ends.lookup(surface, 3) if r not in rows]
                    if rows:
                        expected.append((start, end, tuple(rows), (0.0,) * len(rows)))
        assert find_name_part_matches(words, spaces, starts, ends, max_length=4, k=3) == expected, (words, spaces)


def test_surfaces_match_without_case_or_accents():
    kb = KnowledgeBase([Entity("Norberto Téllez", "Norberto Téllez"), Entity("Москва", "Москва"),
                        Entity("Q1", "Alpay Ozalan")])
    prior = AliasTable.from_records([{"alias": "Alpay Özalan", "entities": [["Q1", 1.0]]}])
    table = build_candidate_table(kb, prior, per_alias=10)
    words = ["NORBERTO", "TELLEZ", "and", "Alpay", "Ozalan", "in", "МОСКВА"]
    matches = find_matches(words, [True] * 7, table, max_length=2)
    assert [(s, e, rows) for s, e, rows, _ in matches] == [(0, 2, (0,)), (3, 5, (2,)), (6, 7, (1,))]
    assert fold("Ünal ŞÜKÜR") == "unal sukur"
    assert fold("Москва") == "москва"  # other scripts keep their letters
    assert normalize_surface("  São   Paulo ") == "sao paulo"


def test_sample_golds_holds_out_a_share_of_non_name_mentions():
    golds = [(i, i + 1, i % 3) for i in range(3000)] + [(0, 1, -1)] * 100
    surfaces = ["bulls", "jordan", "amman"] * 1000 + ["nil"] * 100
    names = {0: "Chicago Bulls", 1: "Michael Jordan", 2: "Amman"}.__getitem__
    held = sample_golds(golds, surfaces, names, 0.25, numpy.random.default_rng(0))
    rows = [row for _, _, row in held]
    assert 200 < rows.count(0) < 300 and 200 < rows.count(1) < 300
    assert rows.count(2) == 0 and -1 not in rows  # never an entity's own name, never a NIL mention
    assert sample_golds(golds, surfaces, names, 0.0, numpy.random.default_rng(0)) == []
    # name parts only: "bulls" ends "Chicago Bulls", "jordan" ends "Michael Jordan"; "amman" is a whole name
    names = {0: "Chicago Bulls", 1: "Jordan River", 2: "Amman"}.__getitem__
    rows = [row for _, _, row in sample_golds(golds, surfaces, names, 0.5, numpy.random.default_rng(0), is_name_part)]
    assert 400 < rows.count(0) < 600 and rows.count(1) > 400 and rows.count(2) == 0
    surfaces = ["bulls", "jord", "amman"] * 1000 + ["nil"] * 100
    rows = [row for _, _, row in sample_golds(golds, surfaces, names, 0.5, numpy.random.default_rng(0), is_name_part)]
    assert rows.count(1) == 0  # not a whole word of the name


def test_window_rows_and_prior_features():
    matches = [DocMatches([(1, 3, (7, 8), (0.9, 0.1)), (5, 6, (8,), (0.6,)), (0, 2, (9,), (1.0,))])]
    windows = [(0, 0, 4), (0, 2, 6)]
    assert window_alias_rows(matches, windows) == [[9, 7, 8], [8]]
    candidates = numpy.array([[8, 7, -1], [8, 3, 7]])
    cand, start, end = prior_features(matches, windows, candidates, window_size=4)
    assert cand[0].flatten().tolist() == pytest.approx([0.1, 1.0, 0.9, 1.0, 0.0, 0.0])
    # window 0: alias "1..2" of row 7 starts at window token 1 (position 2) and ends at token 2 (position 3)
    assert start[0, 1, 2].tolist() == pytest.approx([0.9, 1.0]) and end[0, 1, 3].tolist() == pytest.approx([0.9, 1.0])
    assert start[0, 1].sum() == pytest.approx(1.9)
    # window 1 (tokens 2..5): only the alias 5..5 of row 8 lies inside; row 7's alias is cut by the window edge
    assert cand[1].flatten().tolist() == pytest.approx([0.6, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert start[1, 0, 4].tolist() == pytest.approx([0.6, 1.0]) and end[1, 0, 4].tolist() == pytest.approx([0.6, 1.0])


def test_short_names_refer_back_to_entities_named_in_full():
    words = ["Alan", "Shearer", "scored", ".", "Shearer", "and", "SHEARER", "shearer", "New", "York", "York"]
    matches = [(0, 2, (5, 6), (0.9, 0.1)), (8, 10, (7,), (1.0,))]
    expanded = expand_short_names(words, matches, eligible=lambda row: row != 7)  # row 7: a place
    # capitalised surnames outside the full match, with the full match's entities and p(e|m); not "shearer",
    # not "York" (a place is no short name of itself), nothing inside the full matches
    assert expanded == matches + [(4, 5, (5, 6), (0.9, 0.1)), (6, 7, (5, 6), (0.9, 0.1))]
    assert expand_short_names(words, matches[1:]) == matches[1:] + [(10, 11, (7,), (1.0,))]
    assert expand_short_names(["Shearer"], []) == []


def test_title_names_are_found_through_the_kb_index_not_stored_in_the_table():
    kb = KnowledgeBase([Entity("Paris", "Paris", type="LOC"), Entity("paris hilton", "paris hilton"),
                        Entity("mercury (planet)", "mercury (planet)"), Entity("mercury", "mercury"),
                        Entity("Mercury", "Mercury"), Entity("paris", "paris")])
    prior = AliasTable({"mercury": [("mercury (planet)", 0.9)]})
    table = build_candidate_table(kb, prior, per_alias=10)
    assert "paris hilton" not in table.entries and table["paris hilton"] == ((1,), (1.0,))
    assert table["paris"] == ((0, 5), (0.5, 0.5))  # a title sharing a richer entity's name: in the table
    assert table["mercury"] == ((2, 3, 4), (0.9, 0.0, 0.0))  # beside a prior surface: p = 0
    assert table.get("venus") is None and "venus" not in table
    assert dict(table.items())["paris hilton"] == ((1,), (1.0,))
    # two titles with one surface and no other owner: uniform, through the index
    twins = build_candidate_table(KnowledgeBase([Entity("Nice", "Nice"), Entity("nice", "nice")]), None, 10)
    assert not twins.entries and twins["nice"] == ((0, 1), (0.5, 0.5))
    words = ["Paris", "Hilton", "met", "NICE", "people"]
    assert find_matches(words, [True] * 5, twins, 3) == [(3, 4, (0, 1), (0.5, 0.5))]


def test_leave_one_out_holds_out_pairs_only_this_doc_supports():
    pair_docs = count_pair_docs([[("bulls", 4), ("jordan", 3), ("jordan", 3)], [("jordan", 3)], [("paris", 1)]])
    assert pair_docs == {("bulls", 4): 1, ("jordan", 3): 2, ("paris", 1): 1}  # docs, not mentions
    names = {1: "Paris Hilton", 3: "Michael Jordan", 4: "Chicago Bulls", 5: "Mercury (planet)"}.__getitem__
    golds = [(0, 1, 4), (2, 3, 3), (5, 6, -1), (7, 8, 1), (9, 10, 5)]
    surfaces = ["bulls", "jordan", "bob", "paris", "mercury"]
    # "bulls" -> Chicago Bulls: this doc alone, not its name -> held out; "jordan": a second doc links it too;
    # NIL: never; "paris" -> Paris Hilton: this doc alone -> held out; "mercury": the name without its qualifier
    assert held_out_golds(golds, surfaces, pair_docs, names) == [(0, 1, 4), (7, 8, 1)]


def test_fold_out_holds_out_pairs_only_the_docs_fold_supports():
    assert contiguous_folds(5, 2) == [0, 0, 0, 1, 1]
    assert contiguous_folds(4, 4) == [0, 1, 2, 3]
    # "jordan" -> Michael Jordan: two docs link it, both in this doc's fold -> held out with folds, kept without
    pair_docs = {("jordan", 3): 2, ("bulls", 4): 3}
    own = {("jordan", 3): 2, ("bulls", 4): 1}  # "bulls": two docs of another fold link it too
    names = {3: "Michael Jordan", 4: "Chicago Bulls"}.__getitem__
    golds, surfaces = [(0, 1, 3), (2, 3, 4)], ["jordan", "bulls"]
    assert held_out_golds(golds, surfaces, pair_docs, names, own) == [(0, 1, 3)]
    assert held_out_golds(golds, surfaces, pair_docs, names) == []


def test_without_pairs_removes_an_entity_from_exactly_that_span():
    matches = DocMatches([(0, 1, (1, 2), (0.7, 0.3)), (3, 4, (1,), (1.0,)), (5, 6, (4,), (1.0,))])
    kept = without_pairs(matches, [(0, 1, 1), (5, 6, 4)])
    assert kept.matches == [(0, 1, (2,), (0.3,)), (3, 4, (1,), (1.0,))]  # same entity elsewhere stays
    assert without_pairs(matches, []) is matches


def test_unqualified_drops_a_bracket_or_a_single_comma_qualifier():
    assert unqualified("Mercury (planet)") == "Mercury"
    assert unqualified("Gainesville, Florida") == "Gainesville"
    assert unqualified("tallahassee, florida") == "tallahassee"
    assert unqualified("Crosby, Stills, Nash & Young") == "Crosby, Stills, Nash & Young"  # a list, not a qualifier
    assert unqualified("a, a novel") == "a, a novel"  # too short a head to stand alone
    assert title_surfaces("Paris, Texas") == ("paris, texas", "paris")


def test_a_comma_qualified_title_is_found_by_its_head_at_p_zero_beside_a_prior_surface():
    kb = KnowledgeBase([Entity("Paris", "Paris", type="LOC"), Entity("gainesville, florida", "gainesville, florida"),
                        Entity("paris, texas", "paris, texas"), Entity("gainesville, georgia", "gainesville, georgia")])
    table = build_candidate_table(kb, AliasTable({"paris": [("Paris", 0.9)]}), per_alias=10)
    assert table["gainesville"] == ((1, 3), (0.5, 0.5))
    assert table["gainesville, florida"] == ((1,), (1.0,))
    assert table["paris"] == ((0, 2), (0.9, 0.0))


def test_acronyms_are_the_initials_of_a_name_with_and_without_minor_words():
    assert acronyms("Agence France-Presse") == ["afp"]
    assert acronyms("Voice of America") == ["voa", "va"]
    assert acronyms("The Associated Press") == ["ap"]
    assert acronyms("at folsom prison") == ["fp"]  # a leading minor word is never an initial
    assert acronyms("Gainesville, Florida") == []  # one word once the qualifier is gone
    assert acronyms("Paris") == [] and acronyms("b c d e f g h") == []  # more words than an acronym has


def test_acronym_index_ranks_by_popularity_and_leaves_people_out():
    kb = KnowledgeBase([Entity("Americans for Prosperity", "Americans for Prosperity", popularity=4.0, type="ORG"),
                        Entity("Ange-Felix Patasse", "Ange-Felix Patasse", popularity=9.0, type="PER"),
                        Entity("agence france-presse", "agence france-presse"),
                        Entity("arithmetic for parents", "arithmetic for parents"),
                        Entity("International Court of Justice", "International Court of Justice", popularity=1.0)])
    index = AcronymIndex(kb)
    assert index.lookup("afp", 5) == (0, 2, 3)  # popularity, then the shorter name; no person
    assert index.lookup("afp", 1) == (0,)
    assert index.lookup("icj", 5) == (4,) and index.lookup("icoj", 5) == (4,)
    assert index.lookup("xyz", 5) == () and index.lookup("abcdefgh", 5) == ()


def test_acronym_matches_are_unknown_all_capitals_tokens_with_name_match_priors():
    kb = KnowledgeBase([Entity("agence france-presse", "agence france-presse"),
                        Entity("American Football Party", "American Football Party"),
                        Entity("Associated Press", "Associated Press"), Entity("AP", "AP")])
    table = build_candidate_table(kb, None, per_alias=10)
    index = AcronymIndex(kb)
    words = ["BEIRUT", "(", "AFP", ")", "-", "afp", "Afp", "AP", "AFP"]
    # both names spell it; equally unknown, the shorter name first
    assert find_acronym_matches(words, table, index, 5) == [(2, 3, (0, 1), (1.0, 1.0)), (8, 9, (0, 1), (1.0, 1.0))]
    # "AP" is a surface the table knows (a name): the table answers for it, not the initials
    assert find_acronym_matches(["AP"], table, index, 5) == []
    assert find_acronym_matches(words, table, index, 1) == [(2, 3, (0,), (1.0,)), (8, 9, (0,), (1.0,))]


def test_title_form_candidates_show_no_prior_or_that_of_a_name_match():
    """A candidate shown as a title-only entity keeps is-an-alias; its p(e|m) is 0 (a surface the prior knows) or,
    where ``name_match``, that of a name nobody else has (1 where it matched); other candidates keep theirs."""
    priors = numpy.array([[[0.3, 1.0], [0.2, 1.0], [0.5, 1.0], [0.0, 0.0]]], dtype="float32")
    start = numpy.zeros((1, 4, 3, 2), dtype="float32")
    start[0, :, 1] = priors[0]
    end = start.copy()
    titled = numpy.array([[True, True, False, True]])
    name_match = numpy.array([[False, True, True, True]])
    show_title_priors(priors, start, end, titled, name_match)
    expected = [[0.0, 1.0], [1.0, 1.0], [0.5, 1.0], [0.0, 0.0]]
    for features in (priors[0], start[0, :, 1], end[0, :, 1]):
        assert features.tolist() == expected
    assert not start[0, :, [0, 2]].any()


def test_find_matches_finds_exactly_the_spans_whose_surface_is_in_the_table():
    """The pruned search against the definition: every span of at most max_length tokens, starting and ending on a
    non-blank token, whose normalized text is a surface of the table (dict entries and titles found by index)."""
    kb = KnowledgeBase([Entity("Q1", "San Jose, California", type="LOC"), Entity("Q2", "New York-based"),
                        Entity("Q3", "St. Louis Cardinals", aliases=["Cardinals"]), Entity("Q4", "Louis"),
                        Entity("q5", "q5"), *[Entity(t, t) for t in ("new york", "new york city", "ab cd ef gh",
                                                                      "são paulo fc", "u.s. open")]])
    prior = AliasTable({"st. louis": [("Q3", 0.4)], "new": [("Q2", 0.1)], "a": [("Q4", 0.2)]})
    table = build_candidate_table(kb, prior, per_alias=10)
    assert table._titles is not None  # some surfaces are only reachable through the title index
    vocab = ["San", "SAN", "Jose", "JOSE", ",", "California", "New", "new", "York", "-", "based", "City", "St.",
             "St", ".", "Louis", "Cardinals", "ab", "cd", "ef", "gh", "São", "Sao", "Paulo", "FC", "U.S.", "Open",
             "a", "the", "\n", " ", "\t\n", "7", "\u0301", "e\u0301", "\u00a0", "\u200b"]
    # a surface that goes on inside a word ("st" + "." of "st. louis") must not stop the span
    cases = [(["St", ".", "Louis", "Cardinals"], [False, True, True, False]),
             (["New", "York", "-", "based", "City"], [True, False, False, True, False]),
             (["U.S.", "\n", "Open"], [False, False, True])]
    rng = numpy.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 14))
        cases.append(([vocab[i] for i in rng.integers(0, len(vocab), n)], [bool(b) for b in rng.integers(0, 2, n)]))
    for words, spaces in cases:
        n = len(words)
        for max_length in (1, 3, 10):
            expected = []
            for start in range(n):
                for end in range(start + 1, min(n, start + max_length) + 1):
                    if fold(words[start]).strip() and fold(words[end - 1]).strip():
                        text = "".join(w + (" " if sp else "") for w, sp in zip(words[start:end], spaces[start:end]))
                        entry = table.get(normalize_surface(text))
                        if entry is not None:
                            expected.append((start, end, *entry))
            assert find_matches(words, spaces, table, max_length) == expected, (words, spaces, max_length)
