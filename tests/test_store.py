import numpy
import pytest
import srsly

from spacy_beer2.aliases import AliasTable
from spacy_beer2.kb import load_kb
from spacy_beer2.store import POPULARITY_SCALE, EntityStore


@pytest.fixture
def store(tiny_bert, kb_path):
    from transformers import AutoModel, AutoTokenizer

    from spacy_beer2.encoder import EntityEncoder

    store = EntityStore("Flat", entity_batch_size=4, n_alias_entities=5)
    store.encoder = EntityEncoder(AutoModel.from_pretrained(str(tiny_bert)),
                                  AutoTokenizer.from_pretrained(str(tiny_bert)))
    prior = AliasTable({"jordan": [("Michael Jordan", 0.8), ("Jordan", 0.2)], "mj": [("Michael Jordan", 1.0)]})
    store.set_kb(kb_path, prior)
    store.build_index(store.vectors)
    return store


def test_a_fresh_store_restores_every_part(store):
    fresh = EntityStore().from_bytes(store.to_bytes())
    assert fresh.kb.to_jsonl() == store.kb.to_jsonl()
    assert fresh.aliases.entries == store.aliases.entries
    assert numpy.array_equal(fresh.vectors, store.vectors)
    assert len(fresh.index) == len(store.index) == 8
    query = store.vectors[:2]
    assert numpy.array_equal(fresh.index.search(query, 3)[1], store.index.search(query, 3)[1])
    assert fresh.encoder.encode(["Paris"]) == pytest.approx(store.encoder.encode(["Paris"]), abs=1e-6)


def test_swapping_the_kb_keeps_the_prior_table_mapped_onto_the_new_kb(store, tmp_path):
    kb = store.kb
    assert store.surfaces["jordan"] == ((kb.row("Michael Jordan"), kb.row("Jordan")), (0.8, 0.2))
    records = [r for r in kb.to_jsonl() if r["id"] != "Michael Jordan"] + [{"id": "Jordan River", "name": "Jordan"}]
    srsly.write_jsonl(tmp_path / "kb.jsonl", records)
    store.set_kb(tmp_path / "kb.jsonl")
    new = store.kb
    assert "mj" not in store.surfaces  # its only entity left the KB
    # the prior's entity, then the new title-only entity reachable by its name
    assert store.surfaces["jordan"] == ((new.row("Jordan"), new.row("Jordan River")), (0.2, 0.0))
    assert store.vectors.shape[0] == len(new) == 8


def test_features_do_not_depend_on_the_kb_maximum(store, tmp_path):
    table = store.entity_table("cpu")
    assert float(table.popularity[store.kb.row("Paris")]) == pytest.approx(6.0 * POPULARITY_SCALE)
    assert int(table.types[store.kb.row("Paris")]) != 0
    srsly.write_jsonl(tmp_path / "titles.jsonl", [{"id": "paris", "name": "paris"}])
    store.set_kb(load_kb(tmp_path / "titles.jsonl"))
    table = store.entity_table("cpu")
    assert float(table.popularity[0]) == 0.0 and int(table.types[0]) == 0


def test_title_vectors_are_the_names_alone(store, tmp_path):
    kb = store.kb
    titles = store.title_vectors()
    paris = kb.row("Paris")
    assert kb[paris].text() != "Paris"
    assert titles[paris] == pytest.approx(store.encoder.encode(["Paris"])[0], abs=1e-5)
    assert not numpy.allclose(titles[paris], store.vectors[paris])
    assert store.entity_table("cpu").titles is None  # only built when training asks for them
    assert numpy.array_equal(store.entity_table("cpu", titles=True).titles.numpy(), titles)
    srsly.write_jsonl(tmp_path / "titles.jsonl", [{"id": "paris", "name": "paris"}])
    store.set_kb(load_kb(tmp_path / "titles.jsonl"))  # a title-only entity: its vector already is its name's
    assert numpy.array_equal(store.title_vectors(), store.vectors)
