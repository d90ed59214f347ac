"""The entity index: a faiss inner-product index over the (projected) KB entity vectors."""

from pathlib import Path
from typing import Optional, Tuple, Union

import numpy


class EntityIndex:
    """Top-K maximum inner product search; row i of the index is row i of the KB.

    ``factory`` is a faiss index-factory string: "Flat" (exact, the default) suits KBs up to a few million
    entities; approximate ones such as "HNSW32" trade a little recall for speed on very large KBs.
    """

    def __init__(self, factory: str = "Flat"):
        self.factory = factory
        self._index = None

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def width(self) -> Optional[int]:
        return None if self._index is None else int(self._index.d)

    def build(self, vectors: numpy.ndarray) -> None:
        import faiss

        vectors = numpy.ascontiguousarray(vectors, dtype="float32")
        try:
            index = faiss.index_factory(vectors.shape[1], self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"index_factory {self.factory!r} is not a faiss index factory string for "
                             f"{vectors.shape[1]}-d vectors (e.g. 'Flat', 'HNSW32', 'IVF1024,SQ8'): "
                             f"{first_line}") from None
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        self._index = index

    def search(self, queries: numpy.ndarray, k: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """Scores and KB rows of the top-k entities of each query; rows are -1 where fewer than k exist."""
        if self._index is None:
            raise ValueError("the entity index is empty: initialize the component with a KB first")
        queries = numpy.ascontiguousarray(queries, dtype="float32")
        k = min(k, len(self))
        if not len(queries) or k < 1:
            return numpy.zeros((len(queries), 0), "float32"), numpy.zeros((len(queries), 0), "int64")
        return self._index.search(queries, k)

    def __getstate__(self) -> dict:
        """Pickle through faiss's own serialization (a faiss index is a SWIG object)."""
        return {"factory": self.factory, "index": self.to_bytes()}

    def __setstate__(self, state: dict) -> None:
        self.factory = state["factory"]
        self.from_bytes(state["index"])

    def to_bytes(self) -> bytes:
        import faiss

        return b"" if self._index is None else faiss.serialize_index(self._index).tobytes()

    def from_bytes(self, data: bytes) -> "EntityIndex":
        import faiss

        self._index = faiss.deserialize_index(numpy.frombuffer(data, dtype="uint8")) if data else None
        return self

    def to_disk(self, path: Union[str, Path]) -> None:
        Path(path).write_bytes(self.to_bytes())

    def from_disk(self, path: Union[str, Path]) -> "EntityIndex":
        return self.from_bytes(Path(path).read_bytes())
