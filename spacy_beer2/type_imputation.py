"""Types for the entities a KB leaves untyped, from their nearest typed neighbours.

A missing type must not be evidence against an entity. In the AIDA KB every gold entity of the training set has a
type (the types partly come from the training set's NER tags) while 14% of testb's gold mentions (4% of testa's)
and every entity of a title-only KB have none: a reader that sees "no type" learns that it means "never the
answer", and rejects "Jesper Parnevik" with p(e|m) = 1 (with the type PER, the same model links it at 0.93). So an
untyped entity gets the type most common among its nearest typed entities in the entity encoder's space.
"""

import numpy

from .kb import TYPE_BUCKETS

BATCH = 16_384


def impute_type_buckets(vectors: numpy.ndarray, buckets: numpy.ndarray, k: int = 10) -> numpy.ndarray:
    """A type bucket for every row: the given one, else (bucket 0) the similarity-weighted majority bucket of the
    row's ``k`` nearest rows with a bucket (inner product of ``vectors``, which are L2-normalised)."""
    import faiss

    out = numpy.asarray(buckets, dtype="int64").copy()
    typed, untyped = numpy.flatnonzero(out > 0), numpy.flatnonzero(out == 0)
    if not len(typed) or not len(untyped):
        return out
    index = faiss.IndexFlatIP(vectors.shape[1])
    for start in range(0, len(typed), BATCH):
        index.add(numpy.ascontiguousarray(vectors[typed[start : start + BATCH]], dtype="float32"))
    k = min(k, len(typed))
    typed_buckets = out[typed]
    for start in range(0, len(untyped), BATCH):
        rows = untyped[start : start + BATCH]
        sims, neighbours = index.search(numpy.ascontiguousarray(vectors[rows], dtype="float32"), k)
        votes = numpy.zeros((len(rows), TYPE_BUCKETS), dtype="float64")
        numpy.add.at(votes, (numpy.repeat(numpy.arange(len(rows)), k), typed_buckets[neighbours].ravel()),
                     numpy.maximum(sims, 1e-6).ravel())
        out[rows] = votes.argmax(axis=1)
    return out
