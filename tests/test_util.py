"""Small shared helpers."""

from collections import namedtuple

import torch

from spacy_beer2.util import cast_tensors


def test_bfloat16_outputs_come_back_as_float32_wherever_they_sit():
    Pair = namedtuple("Pair", "a b")
    half, ids = torch.ones(2, dtype=torch.bfloat16), torch.arange(3)
    given = {"hidden": half, "all": (half, [half, ids]), "pair": Pair(half, ids), "n": 3}
    out = cast_tensors(given, torch.bfloat16, torch.float32)
    assert given["hidden"] is half  # a plain dict (the keyword arguments) is copied, not changed
    assert out["hidden"].dtype == torch.float32 and out["n"] == 3
    assert [t.dtype for t in (out["all"][0], *out["all"][1])] == [torch.float32, torch.float32, torch.int64]
    assert type(out["pair"]) is Pair and out["pair"].a.dtype == torch.float32 and out["pair"].b is ids
