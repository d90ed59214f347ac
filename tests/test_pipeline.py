"""The beer2_linker component end to end, on a tiny random BERT and a synthetic KB (see conftest.py)."""

import subprocess
import sys

import pytest
import spacy
import srsly
from spacy.tokens import Span

from spacy_beer2.decoding import Link
from spacy_beer2.kb import KBError
from spacy_beer2.pipeline import KEPT_CANDIDATES, Beer2Linker, scheduled_share
from spacy_beer2.store import token_texts

from conftest import links, train


def test_factory_is_found_through_entry_points_without_import():
    code = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "pipe = nlp.add_pipe('beer2_linker')\n"
        "assert type(pipe).__name__ == 'Beer2Linker', type(pipe)\n"
        "assert spacy.registry.architectures.get('spacy-beer2.Beer2Model.v1')\n"
        "assert spacy.registry.architectures.get('spacy-beer2.Beer2Model.v2')\n"
        "assert spacy.registry.misc.get('spacy-beer2.transformer_path.v1')\n"
        "assert spacy.registry.readers.get('spacy-beer2.JsonlCorpus.v1')\n"
        "assert 'faiss' not in sys.modules and 'spacy_beer2.module' not in sys.modules, 'heavy import at start-up'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_beer2_model_v1_is_the_reader_without_name_evidence_for_pipelines_trained_before_it():
    from thinc.api import noop

    v1 = spacy.registry.architectures.get("spacy-beer2.Beer2Model.v1")
    v2 = spacy.registry.architectures.get("spacy-beer2.Beer2Model.v2")
    assert v1(noop()).attrs["module_config"]["name_evidence"] is False
    assert v2(noop()).attrs["module_config"]["name_evidence"] is True
    assert spacy.blank("en").add_pipe("beer2_linker").model.attrs["module_config"]["name_evidence"] is True


def test_training_lowers_the_loss_and_links_the_memorised_corpus(trained):
    nlp, examples, history, _ = trained
    assert sum(history[-5:]) / 5 < 0.3 * sum(history[:5]) / 5
    scores = nlp.evaluate(examples)
    assert scores["el_f"] >= 0.9, scores
    doc = nlp("Jordan scored for the Bulls last night .")
    assert [(e.text, e.kb_id_, e.label_) for e in doc.ents] == [
        ("Jordan", "Michael Jordan", "PER"), ("Bulls", "Chicago Bulls", "ORG")]
    assert 0.05 < doc.ents[0]._.beer2_score <= 1.0
    assert doc.ents[0]._.beer2_candidates[0][0] == "Michael Jordan"
    # the same name, another context, another entity
    doc = nlp("The king of Jordan met officials in Amman .")
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Jordan", "Jordan"), ("Amman", "Amman")]


def test_round_trip_in_a_fresh_process_gives_identical_output(trained, tmp_path):
    nlp, examples, _, path = trained
    texts = [eg.reference.text for eg in examples]
    expected = links(nlp, texts)
    code = (
        "import json, sys, spacy\n"
        f"nlp = spacy.load({str(path)!r})\n"
        f"texts = json.loads({srsly.json_dumps(texts)!r})\n"
        "out = [[(e.start_char, e.end_char, e.label_, e.kb_id_, round(e._.beer2_score, 5)) for e in d.ents]"
        " for d in nlp.pipe(texts)]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = srsly.json_loads(result.stdout.strip().splitlines()[-1])
    assert [[tuple(x[:4]) for x in doc] for doc in loaded] == [[x[:4] for x in doc] for doc in expected]
    assert [x[4] for doc in loaded for x in doc] == pytest.approx([x[4] for doc in expected for x in doc], abs=1e-5)


def test_empty_and_huge_docs(trained):
    nlp = trained[0]
    assert nlp("").ents == ()
    assert nlp("   ").ents == ()
    huge = " ".join(["Fans in Chicago cheered Jordan again ."] * 300)
    doc = nlp(huge)
    assert len(doc.ents) >= 300
    assert all(e.kb_id_ for e in doc.ents)


def test_swap_kb_without_retraining(trained, tmp_path):
    nlp, examples, _, path = trained
    fresh = spacy.load(path)
    records = [r for r in fresh.get_pipe("beer2_linker").kb.to_jsonl() if r["id"] != "Chicago Bulls"]
    srsly.write_jsonl(tmp_path / "kb.jsonl", records)
    linker = fresh.get_pipe("beer2_linker")
    linker.set_kb(tmp_path / "kb.jsonl")
    assert len(linker.kb) == 7 and len(linker.store.index) == 7
    ids = {e.kb_id_ for doc in fresh.pipe(eg.reference.text for eg in examples) for e in doc.ents}
    assert "Chicago Bulls" not in ids and "Michael Jordan" in ids


def test_kb_encoding_runs_on_the_device_the_linker_runs_on(trained, tmp_path, monkeypatch):
    # a loaded pipeline's encoder comes from disk on the CPU: on a GPU, set-kb encoded 137k entities at a tenth
    # of the GPU's speed until the encoder followed the module
    from spacy_beer2.encoder import EntityEncoder

    fresh = spacy.load(trained[3])
    linker = fresh.get_pipe("beer2_linker")
    srsly.write_jsonl(tmp_path / "kb.jsonl", list(linker.kb.to_jsonl()))
    calls, encode = [], EntityEncoder.encode
    monkeypatch.setattr(EntityEncoder, "to", lambda self, device: calls.append(("to", device)) or self)
    monkeypatch.setattr(EntityEncoder, "encode", lambda self, *a, **k: calls.append("encode") or encode(self, *a, **k))
    linker.set_kb(tmp_path / "kb.jsonl")
    assert calls[:2] == [("to", linker._device), "encode"]
    # and the names of entities for title dropout, when a saved pipeline resumes training
    calls.clear()
    linker._entity_table(titles=True)
    assert calls[:2] == [("to", linker._device), "encode"]


def test_untyped_entities_get_a_type_when_the_reader_first_meets_them(trained, tmp_path):
    fresh = spacy.load(trained[3], config={"components": {"beer2_linker": {"n_candidates": 8}}})
    linker = fresh.get_pipe("beer2_linker")
    extra = [{"id": f"Extra {i}", "name": f"zq{i} xv{i}"} for i in range(12)]
    srsly.write_jsonl(tmp_path / "kb.jsonl", [*linker.kb.to_jsonl(), *extra])
    linker.set_kb(tmp_path / "kb.jsonl")
    untyped = [linker.kb.row(record["id"]) for record in extra]
    assert (linker.store.type_buckets()[untyped] == 0).all()
    text = "Jordan scored for the Bulls last night ."
    fresh(text)
    with fresh.select_pipes(disable=["beer2_linker"]):
        seen = {linker.kb.row(i) for _, _, ids in linker.window_candidates([fresh(text)])[0] for i in ids}
    buckets = linker.store.type_buckets()
    assert all(buckets[row] > 0 for row in seen)
    # imputed exactly when met: the others wait (both kinds are there)
    assert [buckets[row] > 0 for row in untyped] == [row in seen for row in untyped]
    assert 0 < len(seen.intersection(untyped)) < len(untyped)


def _keep(nlp, gold, candidates=None):
    """Keep ``nlp``'s window candidates with the ``gold`` docs (or ``candidates`` for every window)."""
    linker = nlp.get_pipe("beer2_linker")
    with nlp.select_pipes(disable=["beer2_linker"]):
        docs = list(nlp.pipe(doc.text for doc in gold))
    linker.keep_candidates(docs)
    for doc, reference in zip(docs, gold):
        kept = doc.user_data[KEPT_CANDIDATES]
        reference.user_data[KEPT_CANDIDATES] = [[s, e, candidates] for s, e, _ in kept] if candidates else kept


def test_keep_candidates_stores_the_retrievers_window_candidates_by_characters(trained):
    nlp, examples = trained[0], trained[1]
    gold = [eg.reference.copy() for eg in examples]
    _keep(nlp, gold)
    linker = nlp.get_pipe("beer2_linker")
    with nlp.select_pipes(disable=["beer2_linker"]):
        docs = list(nlp.pipe(doc.text for doc in gold))
    expected = linker.window_candidates(docs, linker.n_train_candidates)
    for doc, reference, windows in zip(docs, gold, expected):
        kept = reference.user_data[KEPT_CANDIDATES]
        assert [(doc.char_span(s, e).start, doc.char_span(s, e).end, ids) for s, e, ids in kept] == windows
        assert all(len(ids) == linker.n_train_candidates for _, _, ids in kept)


def test_without_dynamic_candidates_training_reads_only_the_kept_candidates(trained, make_nlp, monkeypatch):
    from spacy_beer2.module import Beer2Module

    nlp, examples, optimizer = make_nlp(lambda gold: _keep(trained[0], gold, ["Seine"]), **{
        "components.beer2_linker.dynamic_candidates": False, "components.beer2_linker.n_random_negatives": 0})
    linker = nlp.get_pipe("beer2_linker")
    searches, seen = [], []
    original_search, original_retrieve = type(linker.store.index).search, Beer2Module.retrieve
    monkeypatch.setattr(type(linker.store.index), "search",
                        lambda self, *a: searches.append(1) or original_search(self, *a))

    def spy(self, batch, table, settings, golds=None, fixed=None):
        original_retrieve(self, batch, table, settings, golds, fixed)
        if golds is not None:
            for (d, s, e), rows in zip(batch.windows, batch.candidates.tolist()):
                inside = {linker.kb[r].id for gs, ge, r in golds[d] if r >= 0 and gs >= s and ge <= e}
                seen.append(({linker.kb[r].id for r in rows if r >= 0}, inside | {"Seine"}))

    monkeypatch.setattr(Beer2Module, "retrieve", spy)
    train(nlp, examples, optimizer, 2)
    assert searches == [] and seen
    assert all(got == expected for got, expected in seen)
    nlp("Jordan scored for the Bulls .")  # prediction does search
    assert searches


def test_without_dynamic_candidates_training_needs_candidates_kept_with_the_docs(trained, make_nlp):
    with pytest.raises(ValueError, match="keep-candidates"):
        make_nlp(**{"components.beer2_linker.dynamic_candidates": False})
    # kept with other windows (here: by another window_size) than this training makes
    with pytest.raises(ValueError, match="window_size"):
        nlp, examples, optimizer = make_nlp(lambda gold: _keep(trained[0], gold), **{
            "components.beer2_linker.dynamic_candidates": False, "components.beer2_linker.model.window_size": 6})
        train(nlp, examples, optimizer, 1)


def test_without_span_retrieval_no_span_query_is_issued(make_nlp, monkeypatch):
    from spacy_beer2.module import Beer2Module

    seen = []
    original = Beer2Module.retrieve

    def spy(self, batch, *args, **kwargs):
        seen.append(sum(len(s) for s in batch.spans))
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(Beer2Module, "retrieve", spy)
    nlp, examples, optimizer = make_nlp(**{"components.beer2_linker.span_retrieval": False})
    train(nlp, examples, optimizer, 2)
    assert seen and set(seen) == {0}
    seen.clear()
    nlp, examples, optimizer = make_nlp()
    train(nlp, examples, optimizer, 1)
    assert seen[-1] > 0  # teacher-forced gold spans query the retriever


def test_nil_mentions_never_go_through_a_kb_lookup(make_nlp):
    """Regression: with an entity whose id folds to "nil", every NIL mention became a positive of it."""
    from spacy_beer2.kb import Entity, KnowledgeBase

    nlp, examples, _ = make_nlp()
    linker = nlp.get_pipe("beer2_linker")
    linker.set_kb(KnowledgeBase(list(linker.kb) + [Entity("NIL", "NIL"), Entity("nil", "nil")]))
    eg = examples[0]
    eg.reference.ents = list(eg.reference.ents) + [Span(eg.reference, len(eg.reference) - 1, len(eg.reference),
                                                        label="NIL", kb_id="NIL")]
    rows = [row for _, _, row in linker._gold(eg)]
    assert rows[-1] == -1 and all(row < 8 for row in rows)


def test_settings_given_at_load_win_over_the_saved_ones(trained):
    _, _, _, path = trained
    assert spacy.load(path)("Jordan scored for the Bulls last night .").ents
    overrides = {"components": {"beer2_linker": {"threshold": 0.9999, "n_candidates": 2, "overwrite": False}}}
    nlp = spacy.load(path, config=overrides)
    linker = nlp.get_pipe("beer2_linker")
    assert linker.threshold == 0.9999 and linker.n_candidates == 2
    doc = nlp.make_doc("Jordan scored for the Bulls last night .")
    doc.ents = [Span(doc, 0, 1, label="PERSON")]
    doc = nlp(doc)
    assert doc.ents[0].label_ == "PERSON"  # kept: overwrite = false came from the load-time config
    assert all(ent._.beer2_score > 0.9999 for ent in doc.ents[1:])
    assert linker.cfg == {"input_width": 32}  # only learned state is saved


@pytest.mark.parametrize("on", [True, False])
def test_decoding_mends_spans_and_links_name_repeats_unless_switched_off_at_load(trained, on):
    _, _, _, path = trained
    nlp = spacy.load(path, config={"components": {"beer2_linker": {"complete_spans": on, "name_repeats": on}}})
    linker = nlp.get_pipe("beer2_linker")
    doc = nlp.make_doc("Michael Jordan scored . Michael left .")
    row = linker.kb.row("Michael Jordan")  # a person in the KB
    links = linker.decode(doc, [Link(1, 2, row, 0.5)])  # "Jordan" alone, linked to Michael Jordan
    expected = [(0, 2, row), (4, 5, row)] if on else [(1, 2, row)]
    assert [(lk.start, lk.end, lk.row) for lk in links] == expected
    place = linker.kb.row("Chicago")  # not a person: its name's words are not linked again
    assert len(linker.decode(nlp.make_doc("Chicago Bulls won . Chicago"), [Link(0, 2, place, 0.5)])) == 1


@pytest.mark.parametrize("setting,value,message", [("threshold", 0.0, "threshold must be a probability"),
                                                   ("threshold", 1.5, "threshold must be a probability"),
                                                   ("n_candidates", 0, "n_candidates must be at least 1"),
                                                   ("prior_folds", 1, "prior_folds must be 0")])
def test_bad_settings_fail_clearly(setting, value, message):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe("beer2_linker", config={setting: value})


def test_update_before_initialize_fails_clearly():
    from spacy.training import Example

    nlp = spacy.blank("en")
    linker = nlp.add_pipe("beer2_linker")
    doc = nlp.make_doc("Paris")
    with pytest.raises(ValueError, match="not initialized"):
        linker.update([Example(doc, doc)])


def test_initialize_without_kb_fails_clearly(make_nlp):
    with pytest.raises(ValueError, match="needs a KB"):
        make_nlp(**{"initialize.components.beer2_linker.kb": None})


def test_initialize_with_bad_kb_names_the_line(make_nlp, tmp_path):
    bad = tmp_path / "kb.jsonl"
    bad.write_text('{"id": "A", "name": "A"}\n{"id": "B", "name": 7}\n', encoding="utf8")
    with pytest.raises(KBError, match="kb.jsonl:2: field 'name'"):
        make_nlp(**{"paths.kb": str(bad), "initialize.components.beer2_linker.kb": str(bad)})


def test_uninitialized_component_errors():
    nlp = spacy.blank("en")
    linker = nlp.add_pipe("beer2_linker")
    assert isinstance(linker, Beer2Linker)
    with pytest.raises(ValueError, match="not initialized"):
        linker.predict([nlp("text")])


def test_resume_config_continues_training_a_saved_pipeline(trained, tmp_path, corpus_path):
    """configs/beer2_resume.cfg sources transformer + beer2_linker (KB included) and trains on with spacy train."""
    from pathlib import Path

    from spacy_beer2.corpus import convert

    _, _, _, path = trained
    data = tmp_path / "train.spacy"
    convert(corpus_path, data, spacy.blank("en"), None)
    config = Path(__file__).parent.parent / "configs" / "beer2_resume.cfg"
    args = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(tmp_path / "out"),
            "--paths.model", str(path), "--paths.train", str(data), "--paths.dev", str(data),
            "--training.max_steps", "4", "--training.eval_frequency", "2"]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    resumed = spacy.load(tmp_path / "out" / "model-last")
    linker = resumed.get_pipe("beer2_linker")
    assert len(linker.kb) == len(trained[0].get_pipe("beer2_linker").kb)
    assert resumed("Jordan scored for the Bulls .").has_annotation("ENT_IOB")


def test_multiprocessing_pipe_equals_serial_after_the_parent_has_run_torch(trained):
    """Regression: forked workers hung in torch's first op once the parent had linked a text."""
    import signal

    def hung(*_):
        raise TimeoutError("nlp.pipe(n_process=2) hung")

    nlp, examples, _, _ = trained
    texts = [eg.reference.text for eg in examples] * 2
    serial = links(nlp, texts)  # the parent runs torch first
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        parallel = [[(e.start_char, e.end_char, e.label_, e.kb_id_, round(e._.beer2_score, 5)) for e in doc.ents]
                    for doc in nlp.pipe(texts, n_process=2, batch_size=3)]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert parallel == serial


def test_training_dropout_reaches_the_torch_module(make_nlp):
    import torch

    from spacy_beer2.model import get_module

    nlp, examples, optimizer = make_nlp()
    nlp.update(examples, sgd=optimizer, drop=0.35)
    rates = {layer.p for layer in get_module(nlp.get_pipe("beer2_linker").model).modules()
             if isinstance(layer, torch.nn.Dropout)}
    assert rates == {0.35}


def test_a_disabled_upstream_transformer_fails_clearly_instead_of_reading_zeros(trained):
    nlp = trained[0]
    with pytest.raises(ValueError, match="run the 'transformer' component first"):
        list(nlp.pipe(["Jordan scored for the Bulls ."], disable=["transformer"]))


def test_the_linker_loss_reaches_the_shared_transformer(make_nlp):
    """BEER2's parameter sharing: the linker's joint loss must move the shared transformer's weights."""
    nlp, examples, _ = make_nlp()
    transformer = nlp.get_pipe("transformer").model.transformer
    transformer.zero_grad()
    nlp.update(examples, sgd=False)  # as spacy train does: updates first, finish_update after all of them
    grads = {name: param.grad for name, param in transformer.named_parameters()}
    assert grads["encoder.layer.1.output.dense.weight"].abs().sum() > 0
    assert grads["embeddings.word_embeddings.weight"].abs().sum() > 0
    assert grads["pooler.dense.weight"] is None  # unused by the listener: the gradients are the linker's


def test_leave_one_out_priors_hide_what_only_the_doc_itself_put_in_the_table(make_nlp):
    """"Bulls" -> Chicago Bulls is linked in one training doc only and is not the team's name: with
    leave_one_out_priors the training matches lack it (as a test doc's may), while "Jordan" -> Michael Jordan,
    linked in two docs, stays; prediction never holds anything out."""
    nlp, examples, _ = make_nlp(**{"components.beer2_linker.leave_one_out_priors": True,
                                   "components.beer2_linker.prior_holdout": 0.0,
                                   "components.beer2_linker.name_part_holdout": 0.0,
                                   "components.beer2_linker.name_part_candidates": 0})
    linker = nlp.get_pipe("beer2_linker")
    eg = next(eg for eg in examples if "Bulls" in eg.reference.text and "scored" in eg.reference.text)
    bulls, jordan = linker.kb.row("Chicago Bulls"), linker.kb.row("Michael Jordan")
    golds = [linker._gold(eg)]

    def rows_at(matches, word):
        i = next(t.i for t in eg.predicted if t.text == word)
        return {r for s, e, rows, _ in matches.matches if (s, e) == (i, i + 1) for r in rows}

    held = linker._training_matches([eg], golds, [token_texts(eg.predicted)])[0]
    plain = linker._matches([token_texts(eg.predicted)])[0]
    assert bulls in rows_at(plain, "Bulls") and bulls not in rows_at(held, "Bulls")
    assert jordan in rows_at(held, "Jordan")
    off, _, _ = make_nlp(**{"components.beer2_linker.leave_one_out_priors": False,
                            "components.beer2_linker.prior_holdout": 0.0,
                            "components.beer2_linker.name_part_holdout": 0.0,
                            "components.beer2_linker.name_part_candidates": 0})
    texts = [token_texts(eg.predicted)]
    assert off.get_pipe("beer2_linker")._training_matches([eg], golds, texts)[0].matches == plain.matches


def test_prior_folds_hide_what_only_the_docs_fold_put_in_the_table(make_nlp):
    """The two training docs that link "Jordan" -> Michael Jordan are put first, so both fall in the first of two
    folds: leave-one-out keeps the pair in each (the other doc links it too), prior_folds = 2 hides it in both (no
    doc of the second fold links it), while an entity's own name ("Chicago") is never hidden."""
    def jordan_first(gold):
        gold.sort(key=lambda doc: all(ent.kb_id_ != "Michael Jordan" for ent in doc.ents))

    settings = {"components.beer2_linker.leave_one_out_priors": True, "components.beer2_linker.prior_holdout": 0.0,
                "components.beer2_linker.name_part_holdout": 0.0, "components.beer2_linker.name_part_candidates": 0}
    by_folds = {folds: make_nlp(jordan_first, **settings, **{"components.beer2_linker.prior_folds": folds})
                for folds in (0, 2)}
    examples = by_folds[0][1]
    jordan_docs = [eg for eg in examples if any(ent.kb_id_ == "Michael Jordan" for ent in eg.reference.ents)]
    assert [examples.index(eg) for eg in jordan_docs] == [0, 1]

    def rows_at(nlp, eg, word):
        linker = nlp.get_pipe("beer2_linker")
        matches = linker._training_matches([eg], [linker._gold(eg)], [token_texts(eg.predicted)])[0]
        i = next(t.i for t in eg.predicted if t.text == word)
        return {linker.kb[r].id for s, e, rows, _ in matches.matches if (s, e) == (i, i + 1) for r in rows}

    for eg in jordan_docs:
        assert "Michael Jordan" in rows_at(by_folds[0][0], eg, "Jordan")
        assert "Michael Jordan" not in rows_at(by_folds[2][0], eg, "Jordan")
    chicago = next(eg for eg in examples if "Fans in Chicago" in eg.reference.text)
    assert rows_at(by_folds[2][0], chicago, "Chicago") >= {"Chicago"}


@pytest.mark.parametrize("setting", ["prior_holdout", "name_part_holdout"])
def test_holdouts_hide_a_fresh_random_share_of_gold_pairs_each_update(make_nlp, setting):
    """"Jordan" -> Michael Jordan is linked in several training docs, so leave-one-out keeps it; prior_holdout (the
    surface is not the name) and name_part_holdout (it is the name's last word) hide its prior in some updates and
    not in others, while the name-part match of the span stays; an entity is never hidden from its own name
    ("Amman")."""
    nlp, examples, _ = make_nlp(**{"components.beer2_linker.leave_one_out_priors": False,
                                   "components.beer2_linker.prior_holdout": 0.0,
                                   "components.beer2_linker.name_part_holdout": 0.0,
                                   f"components.beer2_linker.{setting}": 0.5,
                                   "components.beer2_linker.name_part_candidates": 2})
    linker = nlp.get_pipe("beer2_linker")

    def probs(eg, word, entity):
        i, row = next(t.i for t in eg.predicted if t.text == word), linker.kb.row(entity)
        matches = linker._training_matches([eg], [linker._gold(eg)], [token_texts(eg.predicted)])[0].matches
        return {p for s, e, rows, ps in matches if (s, e) == (i, i + 1) for r, p in zip(rows, ps) if r == row}

    eg = next(eg for eg in examples if "scored" in eg.reference.text and "Jordan" in eg.reference.text)
    seen = [probs(eg, "Jordan", "Michael Jordan") for _ in range(40)]
    assert all(0.0 in p for p in seen)  # the name-part match is never held out
    assert 5 < sum(any(x > 0 for x in p) for p in seen) < 35
    named = next(eg for eg in examples if "Amman" in eg.reference.text)
    assert all(any(p > 0 for p in probs(named, "Amman", "Amman")) for _ in range(20))


def test_name_part_candidates_come_from_kb_names_and_are_never_held_out(make_nlp):
    """"Michael" begins the name of Michael Jordan: with name_part_candidates it is a match of that entity at p = 0
    (none without). A held-out gold pair leaves the alias matches but not the name-part ones, which test text
    has too."""
    nlp, examples, _ = make_nlp(**{"components.beer2_linker.name_part_candidates": 2})
    linker = nlp.get_pipe("beer2_linker")
    doc = nlp.make_doc("Michael flew from Paris to Amman .")
    michael, hilton = linker.kb.row("Michael Jordan"), linker.kb.row("Paris Hilton")

    def rows_at(matches, i):
        return {(r, p) for s, e, rows, probs in matches.matches if (s, e) == (i, i + 1) for r, p in zip(rows, probs)}

    plain = linker._matches([token_texts(doc)])[0]
    assert rows_at(plain, 0) == {(michael, 0.0)}
    assert (hilton, 0.0) in rows_at(plain, 3) and any(r == hilton and p > 0 for r, p in rows_at(plain, 3))
    held = linker._matches([token_texts(doc)], [[(3, 4, hilton)]])[0]
    assert {p for r, p in rows_at(held, 3) if r == hilton} == {0.0}
    linker.name_part_candidates = 0
    assert rows_at(linker._matches([token_texts(doc)])[0], 0) == set()
    with pytest.raises(ValueError, match="name_part_candidates"):
        make_nlp(**{"components.beer2_linker.name_part_candidates": -1})


def test_acronym_candidates_offer_the_entities_an_unknown_acronym_spells(make_nlp):
    """"CB" is no surface the KB or prior knows; it spells Chicago Bulls (an organisation, offered at the p(e|m) of a
    name match) and Michael Jordan's "MJ" is no candidate: people are left out. Off with acronym_candidates = 0."""
    nlp, _, _ = make_nlp()
    linker = nlp.get_pipe("beer2_linker")
    doc = nlp.make_doc("The CB beat MJ in CHICAGO .")
    bulls = linker.kb.row("Chicago Bulls")

    def found(matches):
        return {(s, e): set(zip(rows, probs)) for s, e, rows, probs in matches.matches if (s, e) in {(1, 2), (3, 4)}}

    assert found(linker._matches([token_texts(doc)])[0]) == {(1, 2): {(bulls, 1.0)}}
    linker.acronym_candidates = 0
    assert found(linker._matches([token_texts(doc)])[0]) == {}
    with pytest.raises(ValueError, match="acronym_candidates"):
        make_nlp(**{"components.beer2_linker.acronym_candidates": -1})
    with pytest.raises(ValueError, match="title_match_prior"):
        make_nlp(**{"components.beer2_linker.title_match_prior": 1.5})


def test_scheduled_share_is_one_in_warm_up_then_the_fall_from_the_peak():
    assert scheduled_share(0.0, 0.0) == 1.0 and scheduled_share(2e-5, 1e-5) == 1.0
    assert scheduled_share(2.5e-5, 5e-5) == 0.5


@pytest.mark.parametrize("follows", [True, False])
def test_the_linkers_rate_follows_the_training_schedule_when_asked(make_nlp, follows):
    from thinc.api import Adam, warmup_linear

    nlp, examples, _ = make_nlp(**{"components.beer2_linker.learn_rate_follows_schedule": follows})
    linker = nlp.get_pipe("beer2_linker")
    sgd = Adam(warmup_linear(1e-4, 2, 6))
    rates = []
    for _ in range(6):
        nlp.update(examples[:2], sgd=sgd)
        rates.append(linker._optimizer.learn_rate)
        sgd.step_schedules()
    if follows:  # full rate through the warm-up (steps 0-2), then down with the schedule
        assert rates[:3] == [linker.learn_rate] * 3 and rates[2] > rates[3] > rates[4] > rates[5] > 0
    else:
        assert rates == [linker.learn_rate] * 6
