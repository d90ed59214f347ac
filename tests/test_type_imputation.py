"""Imputed types: an untyped entity takes the type of its nearest typed neighbours."""

import numpy

from spacy_beer2.type_imputation import TypeImputer, impute_type_buckets


def test_untyped_rows_take_the_majority_bucket_of_their_nearest_typed_rows():
    rng = numpy.random.default_rng(0)
    centers = numpy.eye(8, dtype="float32")[:2] * 5
    vectors = numpy.concatenate([centers[0] + rng.normal(0, 0.3, (20, 8)), centers[1] + rng.normal(0, 0.3, (20, 8))])
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    buckets = numpy.array([3] * 15 + [0] * 5 + [5] * 15 + [0] * 5)
    out = impute_type_buckets(vectors, buckets, k=5)
    assert out[15:20].tolist() == [3] * 5 and out[35:40].tolist() == [5] * 5
    assert numpy.array_equal(out[buckets > 0], buckets[buckets > 0])  # KB types are kept
    assert buckets[15] == 0  # the input is not changed
    assert impute_type_buckets(vectors, numpy.zeros(40, dtype="int64")).tolist() == [0] * 40  # nothing to vote


def test_imputing_some_rows_on_demand_gives_what_imputing_all_gives():
    rng = numpy.random.default_rng(1)
    vectors = rng.standard_normal((300, 16)).astype("float32")
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    buckets = numpy.where(rng.random(300) < 0.4, rng.integers(1, 6, 300), 0)
    every = impute_type_buckets(vectors, buckets)
    rows = numpy.flatnonzero(buckets == 0)[::3]
    assert numpy.array_equal(TypeImputer(vectors, buckets)(rows), every[rows])
    assert len(set(every[rows].tolist())) > 1  # not one bucket for all
