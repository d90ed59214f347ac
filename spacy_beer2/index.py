"""The entity index: a faiss inner-product index over the (projected) KB entity vectors."""

from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import numpy

# Vectors an index that needs training (IVF, PQ) is trained on, drawn at random from the KB.
TRAIN_SIZE = 262_144
# KB rows added to the index at a time: memory stays bounded whatever the KB's size.
ADD_BATCH = 65_536


class EntityIndex:
    """Top-K maximum inner product search; row i of the index is row i of the KB.

    ``factory`` is a faiss index-factory string: "Flat" (exact, the default) suits KBs up to a few million
    entities; compressed ones such as "IVF16384,PQ64" or "IVF16384,SQ8" keep a Wikipedia-sized KB in a fraction of
    the memory (README: Wikipedia scale). ``params`` are faiss search parameters, e.g. "nprobe=64".
    """

    def __init__(self, factory: str = "Flat", params: str = ""):
        self.factory = factory
        self.params = params
        self._index = None

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def width(self) -> Optional[int]:
        return None if self._index is None else int(self._index.d)

    def build(self, vectors: numpy.ndarray) -> None:
        self.build_from(lambda rows: vectors[rows], len(vectors), vectors.shape[1])

    def build_from(self, get_vectors: Callable[[numpy.ndarray], numpy.ndarray], n: int, width: int,
                   seed: int = 0) -> None:
        """Build from ``get_vectors(rows)`` (float vectors of those KB rows), ``ADD_BATCH`` rows at a time; an
        index that needs training is first trained on ``TRAIN_SIZE`` random rows."""
        import faiss

        try:
            index = faiss.index_factory(width, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"index_factory {self.factory!r} is not a faiss index factory string for "
                             f"{width}-d vectors (e.g. 'Flat', 'HNSW32', 'IVF1024,SQ8'): {first_line}") from None
        if not index.is_trained:
            rows = numpy.arange(n) if n <= TRAIN_SIZE else numpy.sort(
                numpy.random.default_rng(seed).choice(n, TRAIN_SIZE, replace=False))
            index.train(numpy.ascontiguousarray(get_vectors(rows), dtype="float32"))
        for start in range(0, n, ADD_BATCH):
            index.add(numpy.ascontiguousarray(get_vectors(numpy.arange(start, min(n, start + ADD_BATCH))),
                                              dtype="float32"))
        self._index = index
        self._apply_params()

    def _apply_params(self) -> None:
        if self.params and self._index is not None:
            import faiss

            try:
                faiss.ParameterSpace().set_index_parameters(self._index, self.params)
            except RuntimeError as err:
                raise ValueError(f"index_params {self.params!r} do not apply to a {self.factory!r} index "
                                 f"(e.g. 'nprobe=64' for IVF, 'efSearch=128' for HNSW): {err}") from None

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
        return {"factory": self.factory, "params": self.params, "index": self.to_bytes()}

    def __setstate__(self, state: dict) -> None:
        self.factory, self.params = state["factory"], state.get("params", "")
        self.from_bytes(state["index"])

    def to_bytes(self) -> bytes:
        import faiss

        return b"" if self._index is None else faiss.serialize_index(self._index).tobytes()

    def from_bytes(self, data: bytes) -> "EntityIndex":
        import faiss

        self._index = faiss.deserialize_index(numpy.frombuffer(data, dtype="uint8")) if data else None
        self._apply_params()
        return self

    def to_disk(self, path: Union[str, Path]) -> None:
        import faiss

        if self._index is None:
            Path(path).write_bytes(b"")
        else:
            faiss.write_index(self._index, str(path))

    def from_disk(self, path: Union[str, Path]) -> "EntityIndex":
        import faiss

        self._index = faiss.read_index(str(path)) if Path(path).stat().st_size else None
        self._apply_params()
        return self
