"""Hostile input: a generated suite of >= 1,000 documents through a trained tiny pipeline, in one process and in
two, and the pipeline rebuilt from its config or pickled. Nothing crashes, every ent has valid offsets and a KB id."""

import pickle
import random

import pytest
import spacy
from spacy.tokens import Span

from conftest import links

LIGHT = [
    "", " ", "\n\n\t  ", "Jordan scored for the Bulls last night .", "The river Seine runs through Paris .",
    "\x00\x01\x02\x1b[31m\x7f\x00", "Jor\u200bdan \u200c\u200d\ufeff Bulls", "Pa\u0301\u0301\u0301ris e\u0308\u0323",
    "👨\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 👍🏽", "北京是中国的首都。東京タワー", "مرحبا بالعالم Jordan שלום עולם",
    "\u202eJordan\u202c Chicago", "JORDAN SCORED FOR THE BULLS .", "Amman\r\nParis\r\n", "\ud7ff\ue000\U0010fffd",
    "12345678901234567890 3.14159 -0", "!?!?...;;;---((([[[{{{", "Fans in Chicago cheered Jordan again .",
]
HEAVY = [
    "x" * 100_000,  # one 100k-character token
    "1234567890" * 300,  # a 3,000-digit number
    "!?.,;:-_()[]{}" * 300,  # a punctuation run of thousands of tokens and wordpieces
    "Fans in Chicago cheered Jordan again . " * 400,
]


def hostile_texts(n: int = 1000, seed: int = 0):
    """The heavy documents once each, then random mixes of the light fragments and random code points."""
    rng = random.Random(seed)
    texts = HEAVY + LIGHT
    while len(texts) < n:
        parts = rng.choices(LIGHT, k=rng.randint(1, 4))
        noise = "".join(chr(rng.choice([rng.randint(0, 0x2FF), rng.randint(0x300, 0xFFFF)])) for _ in range(8))
        noise = noise.encode("utf8", "replace").decode()  # lone surrogates become "?"
        parts.insert(rng.randint(0, len(parts)), noise)
        texts.append(rng.choice(["", " ", "\n"]).join(parts))
    return texts


def check(doc, kb_ids):
    for ent in doc.ents:
        assert 0 <= ent.start_char < ent.end_char <= len(doc.text)
        assert ent.kb_id_ in kb_ids, ent.kb_id_
        assert ent.label_


def test_a_thousand_hostile_docs_link_without_crashing(trained):
    nlp = trained[0]
    kb_ids = set(nlp.get_pipe("beer2_linker").kb.ids)
    texts = hostile_texts()
    assert len(texts) >= 1000
    docs = list(nlp.pipe(texts, batch_size=64))
    for text, doc in zip(texts, docs):
        assert doc.text == text  # nothing lost
        check(doc, kb_ids)
    assert sum(len(doc.ents) for doc in docs) > 500  # and the names among the noise are still found


def test_a_long_document(trained):
    nlp = trained[0]
    text = " ".join(["Fans in Chicago cheered Jordan again ."] * 3000)  # 21k words
    doc = nlp(text)
    assert len(doc.ents) >= 3000
    check(doc, set(nlp.get_pipe("beer2_linker").kb.ids))


@pytest.mark.parametrize("overwrite", [True, False])
def test_ents_set_by_another_component(trained, overwrite):
    nlp = trained[0]
    linker = nlp.get_pipe("beer2_linker")
    doc = nlp.make_doc("Jordan scored for the Bulls last night .")
    doc.ents = [Span(doc, 0, 1, label="PERSON")]
    doc.spans["other"] = [Span(doc, 0, 1, label="A"), Span(doc, 0, 5, label="B")]  # overlapping spans elsewhere
    doc = nlp.get_pipe("transformer")(doc)
    linker.overwrite = overwrite
    try:
        doc = linker(doc)
    finally:
        linker.overwrite = True
    jordan = ("Jordan", "PER", "Michael Jordan") if overwrite else ("Jordan", "PERSON", "")
    assert [(e.text, e.label_, e.kb_id_) for e in doc.ents] == [jordan, ("Bulls", "ORG", "Chicago Bulls")]
    assert len(doc.spans["other"]) == 2


def test_fresh_pipeline_from_config_and_bytes_and_pickle_give_identical_links(trained):
    nlp, examples, _, path = trained
    texts = [eg.reference.text for eg in examples] + hostile_texts(40, seed=1)[len(HEAVY):]
    expected = links(nlp, texts)
    fresh = spacy.util.load_model_from_config(nlp.config, auto_fill=True)
    fresh.from_bytes(nlp.to_bytes())
    assert links(fresh, texts) == expected
    # a loaded pipeline (a freshly trained one holds spaCy's training optimizer, whose schedule cannot be pickled)
    clone = pickle.loads(pickle.dumps(spacy.load(path)))
    assert links(clone, texts) == expected
    doc = pickle.loads(pickle.dumps(nlp(texts[0])))
    assert [(e.text, e.kb_id_) for e in doc.ents] == [(t, k) for (_, _, _, k, _), t in
                                                      zip(expected[0], [e.text for e in doc.ents])]


def test_cost_per_word_stays_flat_as_documents_grow(trained):
    """Long documents stay linear: windows are read a chunk at a time and alias matches are looked up by window."""
    import time

    nlp = trained[0]
    sentence = "Fans in Chicago cheered Jordan again while Paris Hilton flew to Amman . "

    def ms_per_word(n_repeats):
        text = sentence * n_repeats
        nlp(text)  # warm up
        begin = time.perf_counter()
        doc = nlp(text)
        return 1000 * (time.perf_counter() - begin) / len(doc)

    short, long = ms_per_word(150), ms_per_word(1500)  # 2k and 20k words
    assert long < 2.0 * short, (short, long)
