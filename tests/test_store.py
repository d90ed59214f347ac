import numpy
import pytest
import spacy
import srsly

from spacy_beer2.aliases import AliasTable
from spacy_beer2.kb import load_kb
from spacy_beer2.store import POPULARITY_SCALE, EntityStore, token_texts
from spacy_beer2.type_imputation import impute_type_buckets


@pytest.fixture
def store(tiny_bert, kb_path):
    from transformers import AutoModel, AutoTokenizer

    from spacy_beer2.encoder import EntityEncoder

    store = EntityStore("Flat", entity_batch_size=4, n_alias_entities=5)
    store.encoder = EntityEncoder(AutoModel.from_pretrained(str(tiny_bert)),
                                  AutoTokenizer.from_pretrained(str(tiny_bert)))
    prior = AliasTable({"jordan": [("Michael Jordan", 0.8), ("Jordan", 0.2)], "mj": [("Michael Jordan", 1.0)]})
    store.set_kb(kb_path, prior)
    store.build_index(lambda vectors: vectors)
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


def test_a_loaded_store_builds_its_encoder_only_when_it_encodes(store):
    fresh = EntityStore().from_bytes(store.to_bytes())
    assert fresh._encoder is None  # linking never needs it
    again = EntityStore().from_bytes(fresh.to_bytes())  # saved again without ever being built
    assert again.encoder.encode(["Paris"]) == pytest.approx(store.encoder.encode(["Paris"]), abs=1e-6)
    assert again._encoder is not None and again._encoder_bytes is None


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


def test_encoding_in_shards_resumes_after_an_interruption_and_refuses_another_kb(store, tmp_path):
    from spacy_beer2.store import encode_in_shards

    kb, encoder = store.kb, store.encoder
    calls = []
    real_encode = encoder.encode

    def failing(texts, **kwargs):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second shard
        return real_encode(texts, **kwargs)

    encoder.encode = failing
    with pytest.raises(KeyboardInterrupt):
        encode_in_shards(encoder, kb, tmp_path / "work", batch_size=4, shard_size=3)
    encoder.encode = lambda texts, **kwargs: calls.append(len(texts)) or real_encode(texts, **kwargs)
    vectors = encode_in_shards(encoder, kb, tmp_path / "work", batch_size=4, shard_size=3)
    assert calls == [3, 3, 3, 2]  # the first shard was not encoded again
    assert isinstance(vectors, numpy.memmap) and vectors.dtype == numpy.float16
    assert numpy.allclose(vectors, store.vectors, atol=2e-3)
    other = load_kb(kb_path_with(tmp_path, [{"id": "X", "name": "X"}]))
    with pytest.raises(ValueError, match="holds the shards of another KB"):
        encode_in_shards(encoder, other, tmp_path / "work", batch_size=4, shard_size=3)


@pytest.mark.parametrize("sharded", [False, True])
def test_encode_bfloat16_reaches_every_kb_encoding(store, kb_path, tmp_path, sharded):
    store.encode_bfloat16 = True
    real_encode, precisions = store.encoder.encode, []
    store.encoder.encode = lambda texts, **kwargs: precisions.append(kwargs.get("bfloat16")) or real_encode(texts,
                                                                                                          **kwargs)
    store.set_kb(kb_path, work_dir=tmp_path / "work" if sharded else None)
    store.title_vectors()
    assert len(precisions) >= 2 and set(precisions) == {True}


def kb_path_with(tmp_path, records):
    srsly.write_jsonl(tmp_path / "other.jsonl", records)
    return tmp_path / "other.jsonl"


def test_a_large_kb_is_memory_mapped_from_disk_and_links_the_same(store, tmp_path, monkeypatch):
    import spacy_beer2.store as store_module

    store.set_kb(store.kb, work_dir=tmp_path / "work")  # float16, memory-mapped
    store.build_index(lambda vectors: vectors.astype("float32"))
    store.to_disk(tmp_path / "saved")
    monkeypatch.setattr(store_module, "MMAP_BYTES", 0)
    loaded = EntityStore().from_disk(tmp_path / "saved")
    assert isinstance(loaded.vectors, numpy.memmap) and loaded.vectors.dtype == numpy.float16
    table = loaded.entity_table("cpu")
    assert table.base.dtype.is_floating_point and table.base.shape == (8, store.encoder.width)
    query = store.vectors[:3].astype("float32")
    assert numpy.array_equal(loaded.index.search(query, 4)[1], store.index.search(query, 4)[1])


def test_compressed_indexes_are_trained_on_a_sample_and_keep_their_search_parameters(tmp_path):
    import faiss

    from spacy_beer2.index import EntityIndex

    rng = numpy.random.default_rng(0)
    vectors = rng.standard_normal((3000, 16)).astype("float32")
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    exact, ivf = EntityIndex("Flat"), EntityIndex("IVF32,SQ8", "nprobe=32")
    exact.build(vectors)
    ivf.build(vectors)
    assert faiss.extract_index_ivf(ivf._index).nprobe == 32
    truth, found = exact.search(vectors[:100], 10)[1], ivf.search(vectors[:100], 10)[1]
    recall = numpy.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall > 0.95  # all lists probed: only the 8-bit quantization differs
    ivf.to_disk(tmp_path / "index")
    again = EntityIndex("IVF32,SQ8", "nprobe=32").from_disk(tmp_path / "index")
    assert numpy.array_equal(again.search(vectors[:100], 10)[1], found)
    with pytest.raises(ValueError, match="index_params 'efSearch=4' do not apply"):
        EntityIndex("IVF32,SQ8", "efSearch=4").build(vectors)


def test_untyped_entities_get_imputed_types_saved_with_the_store(store, tmp_path):
    srsly.write_jsonl(tmp_path / "kb.jsonl", [r for r in store.kb.to_jsonl()] + [
        {"id": "Paris Saint", "name": "Paris Saint", "description": "capital city of france"}])
    store.set_kb(tmp_path / "kb.jsonl")
    row = store.kb.row("Paris Saint")
    assert store.kb[row].type is None
    table = store.entity_table("cpu")
    assert store.type_buckets()[row] == 0  # imputed when a reader first meets it, not for the whole KB at once
    store.impute_types_of(numpy.array([-1, row, row, 0]))
    buckets = store.type_buckets()
    assert buckets[row] != 0 and (buckets > 0).all()
    assert int(table.types[row]) == buckets[row]  # the table the reader reads is updated too
    assert buckets[row] == impute_type_buckets(store.vectors, store._kb_type_buckets())[row]
    fresh = EntityStore().from_bytes(store.to_bytes())
    assert numpy.array_equal(fresh.type_buckets(), buckets)  # saved, not searched again at load
    raw = EntityStore(impute_types=False).from_bytes(store.to_bytes())
    assert raw.type_buckets()[row] == 0
    raw.impute_types_of(numpy.array([row]))
    assert raw.type_buckets()[row] == 0


def test_title_only_entities_keep_no_type_as_title_dropout_shows_them(store, tmp_path):
    srsly.write_jsonl(tmp_path / "kb.jsonl", [r for r in store.kb.to_jsonl()] + [
        {"id": "Paris Saint", "name": "Paris Saint", "description": "capital city of france"},
        {"id": "Paris Texas", "name": "Paris Texas"}])
    store.set_kb(tmp_path / "kb.jsonl")
    rich, title = store.kb.row("Paris Saint"), store.kb.row("Paris Texas")
    assert store.kb.is_title(title) and not store.kb.is_title(rich)
    assert store.kb.title_mask().tolist() == [store.kb.is_title(r) for r in range(len(store.kb))]
    store.impute_types_of(numpy.array([rich, title]))
    buckets = store.type_buckets()
    assert buckets[rich] > 0 and buckets[title] == 0
    # a store saved with a type imputed for a title (before v0.7) loads without it
    buckets[title] = buckets[rich]
    fresh = EntityStore().from_bytes(store.to_bytes())
    assert fresh.type_buckets()[title] == 0 and fresh.type_buckets()[rich] == buckets[rich]
    store.to_disk(tmp_path / "store")
    assert EntityStore().from_disk(tmp_path / "store").type_buckets()[title] == 0
    # unless asked to: a KB of millions of titles needs their types (README: impute_title_types)
    titled = EntityStore(impute_title_types=True).from_disk(tmp_path / "store")
    assert titled.type_buckets()[title] == buckets[rich]  # kept at load
    titled.type_buckets()[title] = 0
    titled.impute_types_of(numpy.array([title]))
    assert titled.type_buckets()[title] == impute_type_buckets(store.vectors, store._kb_type_buckets())[title] > 0


def test_token_texts_are_the_tokens_texts_and_trailing_spaces():
    nlp = spacy.blank("en")
    for text in ["", "x", "São  Paulo\n\nFC-based U.S. ", " \t", "Москва , 2:1"]:
        doc = nlp(text)
        assert token_texts(doc) == ([t.text for t in doc], [bool(t.whitespace_) for t in doc])
