"""Batch linking of a JSONL corpus, resumable, on one machine or on a Ray cluster.

The input is cut into shards of ``shard_size`` records (byte ranges found in one pass, which also checks every line,
so a bad line stops the job before any linking, with its file and line). Each shard is linked and written on its
own, atomically, to ``OUT.parts/``; a rerun skips the shards already there, and the parts are joined into OUT at
the end, in input order. Locally the shards go through ``nlp.pipe`` (``n_process`` forks); with Ray, a Ray Data
actor pool loads the pipeline once per actor and links whole shards, reading the input and writing parts itself
(the input and OUT must be on storage every node sees).
"""

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc, Span

from .corpus import CorpusError
from .scoring import CANDIDATES, SCORE

LINKS_FIELD = "links"


@dataclass
class Shard:
    index: int
    start: int  # byte offset of its first line
    end: int  # byte offset after its last line
    first_line: int  # line number of its first line (1-based)
    n_records: int


def doc_links(doc: Doc) -> List[Dict[str, Any]]:
    """The links of a linked doc as JSON-ready dicts: character offsets, label, entity, score, best candidates."""
    return [_ent_record(ent) for ent in doc.ents if ent.kb_id_]


def _ent_record(ent: Span) -> Dict[str, Any]:
    record: Dict[str, Any] = {"start": ent.start_char, "end": ent.end_char, "text": ent.text, "label": ent.label_,
                              "entity": ent.kb_id_}
    if Span.has_extension(SCORE) and ent._.get(SCORE) is not None:
        record["score"] = round(float(ent._.get(SCORE)), 6)
    if Span.has_extension(CANDIDATES) and ent._.get(CANDIDATES):
        record["candidates"] = [{"entity": e, "score": round(float(s), 6)} for e, s in ent._.get(CANDIDATES)]
    return record


def plan_shards(path: Union[str, Path], text_field: str, shard_size: int) -> List[Shard]:
    """Cut a JSONL corpus into shards of ``shard_size`` records, checking every line on the way (blank lines are
    no records). CorpusError with the file and line for invalid JSON or a missing/non-string text field."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    shards: List[Shard] = []
    start = offset = 0
    first_line, count = 1, 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if raw.strip():
                if count == 0:
                    start, first_line = offset, line_no
                _parse(raw, text_field, f"{path}:{line_no}")
                count += 1
            offset += len(raw)
            if count == shard_size:
                shards.append(Shard(len(shards), start, offset, first_line, count))
                count = 0
    if count:
        shards.append(Shard(len(shards), start, offset, first_line, count))
    return shards


def _parse(raw: bytes, text_field: str, where: str) -> Dict[str, Any]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorpusError(f"{where}: invalid JSON ({err})") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if not isinstance(record.get(text_field), str):
        raise CorpusError(f"{where}: field {text_field!r} must be a string")
    if LINKS_FIELD in record:
        raise CorpusError(f"{where}: the record already has a {LINKS_FIELD!r} field, which the output would replace")
    return record


def read_shard(path: Union[str, Path], shard: Shard, text_field: str) -> List[Dict[str, Any]]:
    with open(path, "rb") as f:
        f.seek(shard.start)
        lines = f.read(shard.end - shard.start).splitlines()
    return [_parse(raw, text_field, f"{path}:{shard.first_line + i}") for i, raw in enumerate(lines) if raw.strip()]


def link_records(nlp: Language, records: List[Dict[str, Any]], text_field: str, batch_size: int = 16,
                 n_process: int = 1) -> List[Dict[str, Any]]:
    """Each record with its links added (``"links"``), in order."""
    docs = nlp.pipe((r[text_field] for r in records), batch_size=batch_size, n_process=n_process)
    return [{**record, LINKS_FIELD: doc_links(doc)} for record, doc in zip(records, docs)]


def parts_dir(output: Union[str, Path]) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".parts")


def part_path(parts: Path, shard: Shard) -> Path:
    return parts / f"part-{shard.index:06d}.jsonl"


def write_part(parts: Path, shard: Shard, records: Iterable[Dict[str, Any]]) -> None:
    """Write a shard's output so that it either exists complete or not at all (a killed job leaves no half part)."""
    target = part_path(parts, shard)
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, target)


def link_corpus(model: Union[str, Path], input_path: Union[str, Path], output: Union[str, Path], *,
                text_field: str = "text", shard_size: int = 1000, batch_size: int = 16, n_process: int = 1,
                backend: str = "local", n_workers: int = 2, ray_address: Optional[str] = None,
                precision: str = "fp32", progress: Any = None) -> Dict[str, int]:
    """Link every record of ``input_path`` into ``output`` (JSONL, input order), resuming from ``OUT.parts/``.

    ``model`` is a pipeline directory or an installed package name (``precision``: set after loading, see
    ``quantize.py``). ``progress`` (a tqdm bar) gets the total and
    the records of each shard as it is done. Returns the counts of records, links and shards (and those skipped as
    already done) and the wall time (pipeline loading included).
    """
    from .quantize import check_precision

    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    check_precision(precision)  # before any shard is planned or a Ray worker started
    started = time.perf_counter()
    shards = plan_shards(input_path, text_field, shard_size)
    parts = parts_dir(output)
    parts.mkdir(parents=True, exist_ok=True)
    todo = [s for s in shards if not part_path(parts, s).exists()]
    if progress is not None:
        progress.reset(total=sum(s.n_records for s in shards))
        progress.update(sum(s.n_records for s in shards) - sum(s.n_records for s in todo))
    if todo and backend == "local":
        nlp = load_pipeline(model, precision)
        for shard in todo:
            write_part(parts, shard, link_records(nlp, read_shard(input_path, shard, text_field), text_field,
                                                  batch_size, n_process))
            if progress is not None:
                progress.update(shard.n_records)
    elif todo:
        _link_with_ray(model, input_path, parts, todo, text_field, batch_size, n_workers, ray_address, precision,
                       progress)
    n_links = _join_parts(parts, shards, output)
    return {"records": sum(s.n_records for s in shards), "links": n_links, "shards": len(shards),
            "shards_skipped": len(shards) - len(todo), "seconds": round(time.perf_counter() - started, 2)}


def load_pipeline(model: Union[str, Path], precision: str = "fp32") -> Language:
    import spacy

    from .quantize import set_precision

    nlp = spacy.load(model)
    set_precision(nlp, precision)
    return nlp


def _join_parts(parts: Path, shards: List[Shard], output: Union[str, Path]) -> int:
    """Concatenate the parts into OUT (through a temporary file), then remove them; returns the number of links."""
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    n_links = 0
    with open(tmp, "w", encoding="utf8") as out:
        for shard in shards:
            with open(part_path(parts, shard), encoding="utf8") as part:
                for line in part:
                    n_links += len(json.loads(line)[LINKS_FIELD])
                    out.write(line)
    os.replace(tmp, output)
    shutil.rmtree(parts)
    return n_links


class ShardLinker:
    """A Ray Data actor: loads the pipeline once, then links and writes whole shards."""

    def __init__(self, model: str, input_path: str, parts: str, text_field: str, batch_size: int, precision: str):
        import torch

        torch.set_num_threads(1)
        self.nlp = load_pipeline(model, precision)
        self.input_path, self.parts = input_path, Path(parts)
        self.text_field, self.batch_size = text_field, batch_size

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[int]]:
        done: Dict[str, List[int]] = {"index": [], "n_records": []}
        for values in zip(*(batch[name] for name in Shard.__dataclass_fields__)):
            shard = Shard(*(int(v) for v in values))
            records = read_shard(self.input_path, shard, self.text_field)
            write_part(self.parts, shard, link_records(self.nlp, records, self.text_field, self.batch_size))
            done["index"].append(shard.index)
            done["n_records"].append(shard.n_records)
        return done


def _link_with_ray(model: Union[str, Path], input_path: Union[str, Path], parts: Path, todo: List[Shard],
                   text_field: str, batch_size: int, n_workers: int, ray_address: Optional[str], precision: str,
                   progress: Any) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray backend needs Ray Data: pip install 'spacy-beer2[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    dataset = ray.data.from_items([asdict(s) for s in todo])
    linked = dataset.map_batches(
        ShardLinker, batch_size=1, num_cpus=1, concurrency=n_workers,
        fn_constructor_kwargs={"model": str(Path(model).resolve()) if Path(model).exists() else str(model),
                               "input_path": str(Path(input_path).resolve()),
                               "parts": str(parts.resolve()), "text_field": text_field, "batch_size": batch_size,
                               "precision": precision},
    )
    for row in linked.iter_rows():
        if progress is not None:
            progress.update(int(row["n_records"]))
