"""Types for the entities a KB leaves untyped, from their nearest typed neighbours.

A missing type must not be evidence against an entity. In the AIDA KB every gold entity of the training set has a
type (the types partly come from the training set's NER tags) while 14% of testb's gold mentions (4% of testa's)
have none: a reader that sees "no type" learns that it means "never the answer", and rejects "Jesper Parnevik" with
p(e|m) = 1 (with the type PER, the same model links it at 0.93). So an untyped entity gets the type most common
among its nearest typed entities in the entity encoder's space. Entities that are only a title are left untyped:
``title_dropout`` trains the reader on exactly that form (see ``EntityStore.impute_types_of``).
"""

import numpy

from .kb import TYPE_BUCKETS

BATCH = 16_384


class TypeImputer:
    """The similarity-weighted majority type bucket of an entity's ``k`` nearest entities with a KB type (inner
    product of L2-normalised ``vectors``, searched exactly). Built once over the typed entities, it imputes any rows
    on demand: at Wikipedia scale only the entities a reader actually sees need it, not all 5.9M."""

    def __init__(self, vectors: numpy.ndarray, buckets: numpy.ndarray, k: int = 10):
        import faiss

        self.vectors = vectors
        typed = numpy.flatnonzero(numpy.asarray(buckets) > 0)
        self.typed_buckets = numpy.asarray(buckets, dtype="int64")[typed]
        self.k = min(k, len(typed))
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        for start in range(0, len(typed), BATCH):
            self.index.add(numpy.ascontiguousarray(vectors[typed[start : start + BATCH]], dtype="float32"))

    def __call__(self, rows: numpy.ndarray) -> numpy.ndarray:
        """The imputed bucket of each of ``rows`` (all 0 when no entity has a type)."""
        out = numpy.zeros(len(rows), dtype="int64")
        if not self.k:
            return out
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            sims, neighbours = self.index.search(numpy.ascontiguousarray(self.vectors[part], dtype="float32"), self.k)
            votes = numpy.zeros((len(part), TYPE_BUCKETS), dtype="float64")
            numpy.add.at(votes, (numpy.repeat(numpy.arange(len(part)), self.k),
                                 self.typed_buckets[neighbours].ravel()), numpy.maximum(sims, 1e-6).ravel())
            out[start : start + len(part)] = votes.argmax(axis=1)
        return out


def impute_type_buckets(vectors: numpy.ndarray, buckets: numpy.ndarray, k: int = 10) -> numpy.ndarray:
    """A type bucket for every row: the given one, else (bucket 0) the imputed one (see ``TypeImputer``)."""
    out = numpy.asarray(buckets, dtype="int64").copy()
    untyped = numpy.flatnonzero(out == 0)
    if len(untyped) and (out > 0).any():
        out[untyped] = TypeImputer(vectors, out, k)(untyped)
    return out
