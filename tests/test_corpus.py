import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from spacy_beer2.corpus import NIL, CorpusError, convert, create_jsonl_corpus, read_jsonl_docs
from spacy_beer2.kb import load_kb


def test_convert_keeps_links_and_nil(tmp_path, kb_path):
    path = tmp_path / "c.jsonl"
    srsly.write_jsonl(path, [{"id": "d1", "text": "Jordan met Bob in Amman and Atlantis .", "mentions": [
        {"start": 0, "end": 6, "entity": "Michael Jordan"}, {"start": 11, "end": 14, "entity": None},
        {"start": 18, "end": 23, "entity": "Amman"}, {"start": 28, "end": 36, "entity": "Atlantis"}]}])
    nlp = spacy.blank("en")
    stats = convert(path, tmp_path / "c.spacy", nlp, load_kb(kb_path))
    assert (stats.docs, stats.linked, stats.nil, stats.not_in_kb) == (1, 2, 2, 1)
    (doc,) = DocBin().from_disk(tmp_path / "c.spacy").get_docs(nlp.vocab)
    assert [(e.text, e.kb_id_) for e in doc.ents] == [
        ("Jordan", "Michael Jordan"), ("Bob", NIL), ("Amman", "Amman"), ("Atlantis", NIL)]
    assert doc.user_data["doc_id"] == "d1"


def test_misaligned_and_overlapping_mentions(tmp_path):
    path = tmp_path / "c.jsonl"
    srsly.write_jsonl(path, [{"text": "New Yorkers love New York", "mentions": [
        {"start": 0, "end": 8, "entity": "New York"}, {"start": 17, "end": 25, "entity": "New York"},
        {"start": 21, "end": 25, "entity": "York"}]}])
    stats = convert(path, tmp_path / "c.spacy", spacy.blank("en"))
    assert stats.realigned == 1 and stats.overlapping == 1


@pytest.mark.parametrize("line,message", [
    ("{bad json", "c.jsonl:2: invalid JSON"),
    ('{"text": 3}', "c.jsonl:2: expected an object with a string field 'text'"),
    ('{"text": "abc", "mentions": [{"start": 2, "end": 9, "entity": "X"}]}', "c.jsonl:2: mention 0 has bad offsets"),
    ('{"text": "abc", "mentions": [{"start": 0, "end": 1, "entity": 5}]}', "c.jsonl:2: mention 0 has a non-string"),
    ('{"text": "abc", "mentions": {}}', "c.jsonl:2: field 'mentions' must be a list"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine", "mentions": []}\n' + line + "\n", encoding="utf8")
    with pytest.raises(CorpusError) as err:
        list(read_jsonl_docs(path, spacy.blank("en")))
    assert message in str(err.value)


def test_registered_reader(corpus_path):
    reader = spacy.registry.readers.get("spacy-beer2.JsonlCorpus.v1")
    assert reader is create_jsonl_corpus
    examples = list(reader(corpus_path, limit=2)(spacy.blank("en")))
    assert len(examples) == 2
    assert not examples[0].predicted.ents and examples[0].reference.ents
