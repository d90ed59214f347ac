"""The beer2_linker component end to end, on a tiny random BERT and a synthetic KB (see conftest.py)."""

import subprocess
import sys

import pytest
import spacy
import srsly
from spacy.tokens import Span

from spacy_beer2.kb import KBError
from spacy_beer2.pipeline import Beer2Linker


def train(nlp, examples, optimizer, steps):
    history = []
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        history.append(losses["beer2_linker"])
    return history


def links(nlp, texts):
    return [[(e.start_char, e.end_char, e.label_, e.kb_id_, round(e._.beer2_score, 5)) for e in doc.ents]
            for doc in nlp.pipe(texts)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert, kb_path, corpus_path):
    """A tiny pipeline trained until it has memorised the synthetic corpus, saved to disk."""
    from conftest import build_nlp

    nlp, examples, optimizer = build_nlp(tiny_bert, kb_path, corpus_path)
    history = train(nlp, examples, optimizer, 100)
    path = tmp_path_factory.mktemp("trained") / "model"
    nlp.to_disk(path)
    return nlp, examples, history, path


def test_factory_is_found_through_entry_points_without_import():
    code = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "pipe = nlp.add_pipe('beer2_linker')\n"
        "assert type(pipe).__name__ == 'Beer2Linker', type(pipe)\n"
        "assert spacy.registry.architectures.get('spacy-beer2.Beer2Model.v1')\n"
        "assert spacy.registry.misc.get('spacy-beer2.transformer_path.v1')\n"
        "assert spacy.registry.readers.get('spacy-beer2.JsonlCorpus.v1')\n"
        "assert 'faiss' not in sys.modules and 'spacy_beer2.module' not in sys.modules, 'heavy import at start-up'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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


def test_to_bytes_round_trip(trained):
    nlp, examples, _, path = trained
    texts = [eg.reference.text for eg in examples]
    fresh = spacy.load(path)
    linker = fresh.get_pipe("beer2_linker")
    linker.from_bytes(nlp.get_pipe("beer2_linker").to_bytes())
    assert links(fresh, texts) == links(nlp, texts)
    assert len(linker.kb) == 8 and len(linker.index) == 8


def test_empty_and_huge_docs(trained):
    nlp = trained[0]
    assert nlp("").ents == ()
    assert nlp("   ").ents == ()
    huge = " ".join(["Fans in Chicago cheered Jordan again ."] * 300)
    doc = nlp(huge)
    assert len(doc.ents) >= 300
    assert all(e.kb_id_ for e in doc.ents)


def test_keep_existing_ents(trained):
    nlp = trained[0]
    linker = nlp.get_pipe("beer2_linker")
    doc = nlp.make_doc("Jordan scored for the Bulls last night .")
    doc.ents = [Span(doc, 0, 1, label="PERSON")]
    doc = nlp.get_pipe("transformer")(doc)
    linker.cfg["overwrite_ents"] = False
    try:
        doc = linker(doc)
    finally:
        linker.cfg["overwrite_ents"] = True
    expected = [("Jordan", "PERSON", ""), ("Bulls", "ORG", "Chicago Bulls")]
    assert [(e.text, e.label_, e.kb_id_) for e in doc.ents] == expected


def test_swap_kb_without_retraining(trained, tmp_path):
    nlp, examples, _, path = trained
    fresh = spacy.load(path)
    records = list(srsly.read_jsonl(path / "beer2_linker" / "kb"))
    records = [r for r in records if r["id"] != "Chicago Bulls"]
    srsly.write_jsonl(tmp_path / "kb.jsonl", records)
    linker = fresh.get_pipe("beer2_linker")
    linker.set_kb(tmp_path / "kb.jsonl")
    assert len(linker.kb) == 7 and len(linker.index) == 7
    ids = {e.kb_id_ for doc in fresh.pipe(eg.reference.text for eg in examples) for e in doc.ents}
    assert "Chicago Bulls" not in ids and "Michael Jordan" in ids


@pytest.mark.parametrize("switch", [{"components.beer2_linker.dynamic_candidates": False},
                                    {"components.beer2_linker.span_retrieval": False}])
def test_ablation_switches_train(make_nlp, switch):
    nlp, examples, optimizer = make_nlp(**switch)
    linker = nlp.get_pipe("beer2_linker")
    if switch.get("components.beer2_linker.dynamic_candidates") is False:
        assert len(linker._fixed_candidates) == len(examples)
    history = train(nlp, examples, optimizer, 15)
    assert history[-1] < history[0]


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
