import spacy
from spacy.tokens import Span
from spacy.training import Example

from spacy_beer2.scoring import error_breakdown, error_breakdown_by, make_el_scorer, score_el


def make_example(nlp, text, gold, predicted):
    ref, pred = nlp.make_doc(text), nlp.make_doc(text)
    ref.ents = [Span(ref, s, e, label="ENTITY" if kb != "NIL" else "NIL", kb_id=kb) for s, e, kb in gold]
    pred.ents = [Span(pred, s, e, label="X", kb_id=kb) for s, e, kb in predicted]
    return Example(pred, ref)


def test_hand_checked_example():
    nlp = spacy.blank("en")
    # tokens: 0 Jordan 1 met 2 Obama 3 in 4 Paris 5 and 6 Bob 7 in 8 Amman
    text = "Jordan met Obama in Paris and Bob in Amman"
    gold = [(0, 1, "Michael Jordan"), (2, 3, "Barack Obama"), (4, 5, "Paris"), (6, 7, "NIL"), (8, 9, "Amman")]
    predicted = [
        (0, 1, "Jordan"),  # right span, wrong entity: MD hit, EL miss
        (2, 3, "Barack Obama"),  # EL hit
        (4, 5, "Paris"),  # EL hit
        (6, 7, "Bob Dylan"),  # on a NIL gold span: ignored
        (7, 9, "Amman"),  # wrong span: miss for both
    ]
    scores = score_el([make_example(nlp, text, gold, predicted)])
    # 4 counted predictions, 4 InKB golds; EL tp = 2, MD tp = 3
    assert scores["el_p"] == 0.5 and scores["el_r"] == 0.5 and scores["el_f"] == 0.5
    assert scores["md_p"] == 0.75 and scores["md_r"] == 0.75 and scores["md_f"] == 0.75


def test_ids_are_compared_exactly():
    """"Ayr" and "AYR" are two AIDA entities: a folded comparison would count the wrong one as right."""
    nlp = spacy.blank("en")
    scores = score_el([make_example(nlp, "Ayr won", [(0, 1, "AYR")], [(0, 1, "Ayr")])])
    assert scores["el_f"] == 0.0 and scores["md_f"] == 1.0


def test_empty_and_unlinked_predictions():
    nlp = spacy.blank("en")
    eg = make_example(nlp, "Paris is nice", [(0, 1, "Paris")], [])
    eg.predicted.ents = [Span(eg.predicted, 0, 1, label="GPE")]  # an ent without kb_id is not a link
    assert score_el([eg]) == {"el_p": 0.0, "el_r": 0.0, "el_f": 0.0, "md_p": 0.0, "md_r": 0.0, "md_f": 0.0}
    assert score_el([]) == score_el([eg])


def test_registered():
    assert spacy.registry.scorers.get("spacy-beer2.el_scorer.v1") is make_el_scorer
    assert make_el_scorer() is score_el


def _outcome_example(nlp):
    # tokens: 0 Jordan 1 met 2 Obama 3 in 4 Paris 5 and 6 Bob 7 in 8 Amman
    text = "Jordan met Obama in Paris and Bob in Amman"
    gold = [(0, 1, "Michael Jordan"), (2, 3, "Barack Obama"), (4, 5, "Paris"), (6, 7, "NIL"), (8, 9, "Amman")]
    predicted = [(0, 1, "Jordan"), (2, 3, "Barack Obama"), (7, 9, "Amman")]  # Paris: missed
    return make_example(nlp, text, gold, predicted)


def test_error_breakdown_names_what_happened_to_each_gold_mention():
    counts = error_breakdown([_outcome_example(spacy.blank("en"))])
    assert counts == {"gold": 4, "correct": 1, "wrong_entity_gold_in_candidates": 0,
                      "wrong_entity_gold_not_in_candidates": 1, "wrong_boundary": 1, "missed": 1}


def test_error_breakdown_by_group_splits_the_same_outcomes():
    eg = _outcome_example(spacy.blank("en"))
    people = {"Michael Jordan", "Barack Obama"}
    groups = error_breakdown_by([eg], lambda span: "person" if span.kb_id_ in people else "place")
    assert groups["person"]["gold"] == 2 and groups["person"]["correct"] == 1 and groups["person"]["el_r"] == 0.5
    assert groups["place"] == {"gold": 2, "correct": 0, "wrong_entity_gold_in_candidates": 0,
                               "wrong_entity_gold_not_in_candidates": 0, "wrong_boundary": 1, "missed": 1,
                               "el_r": 0.0}
