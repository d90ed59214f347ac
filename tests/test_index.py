import numpy
import pytest

from spacy_beer2.index import EntityIndex


def test_top_k_inner_product_and_round_trip():
    vectors = numpy.eye(4, dtype="float32")
    index = EntityIndex()
    index.build(vectors)
    scores, rows = index.search(numpy.array([[0.1, 0.9, 0.3, 0.0]], dtype="float32"), 2)
    assert rows.tolist() == [[1, 2]]
    assert numpy.allclose(scores, [[0.9, 0.3]])
    again = EntityIndex().from_bytes(index.to_bytes())
    assert len(again) == 4 and again.width == 4
    assert again.search(numpy.eye(4, dtype="float32"), 1)[1].flatten().tolist() == [0, 1, 2, 3]


def test_k_larger_than_index_and_no_queries():
    index = EntityIndex()
    index.build(numpy.eye(3, dtype="float32"))
    assert index.search(numpy.ones((1, 3), dtype="float32"), 10)[1].shape == (1, 3)
    assert index.search(numpy.zeros((0, 3), dtype="float32"), 5)[1].shape == (0, 0)


def test_a_bad_factory_string_fails_clearly():
    with pytest.raises(ValueError, match="index_factory 'Flatt' is not a faiss index factory string"):
        EntityIndex("Flatt").build(numpy.eye(4, dtype="float32"))
