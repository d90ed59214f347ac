"""Lower-precision inference of a loaded pipeline (int8, bf16): what it changes, and that it still links."""

import numpy
import pytest
import spacy
import torch
from torch import nn

from spacy_beer2.model import get_module
from spacy_beer2.quantize import cast_bfloat16, quantize_int8, set_precision

from conftest import links


def test_int8_replaces_the_linear_layers_of_transformer_and_linker_and_still_links(trained):
    _, examples, _, path = trained
    texts = [eg.reference.text for eg in examples]
    nlp = spacy.load(path)
    expected = links(nlp, texts)
    n = quantize_int8(nlp)
    hf_model = next(node for node in nlp.get_pipe("transformer").model.walk() if node.shims).shims[0]._model
    module = get_module(nlp.get_pipe("beer2_linker").model)
    float_linears = [name for name, m in list(hf_model.named_modules()) + list(module.named_modules())
                     if type(m) is nn.Linear]
    assert n > 10
    assert all(".fusion." in name for name in float_linears), float_linears  # only the reader's fusion layer
    assert type(module.reader.start_tokens) is not nn.Linear
    # a scale per output row (per tensor, the int8 model lost twice the EL F1 on AIDA testa)
    assert module.reader.start_tokens.weight().qscheme() == torch.per_channel_affine
    got = links(nlp, texts)
    # same mentions and entities as in float; scores move a little
    assert [[link[:4] for link in doc] for doc in got] == [[link[:4] for link in doc] for doc in expected]
    assert got != expected


def _token_states(nlp, texts):
    return [doc._.trf_data.tensors[0] for doc in nlp.pipe(texts, disable=["beer2_linker"])]


def test_bf16_runs_the_transformers_in_bfloat16_the_rest_of_the_linker_in_float32_and_still_links(trained):
    _, examples, _, path = trained
    texts = [eg.reference.text for eg in examples]
    nlp = spacy.load(path)
    expected, expected_states = links(nlp, texts), _token_states(nlp, texts)
    assert cast_bfloat16(nlp) == 2  # the shared transformer and the reader's fusion layer
    hf_model = next(node for node in nlp.get_pipe("transformer").model.walk() if node.shims).shims[0]._model
    module = get_module(nlp.get_pipe("beer2_linker").model)
    assert {p.dtype for p in hf_model.parameters()} == {torch.bfloat16}
    dtypes = {name: p.dtype for name, p in module.named_parameters()}
    assert {d for name, d in dtypes.items() if name.startswith("reader.fusion.")} == {torch.bfloat16}
    assert {d for name, d in dtypes.items() if not name.startswith("reader.fusion.")} == {torch.float32}
    states = _token_states(nlp, texts)
    for got, want in zip(states, expected_states):  # float32 for thinc, and close to the float32 model's
        assert got.dtype == numpy.float32 and got.shape == want.shape
        cosine = (got * want).sum(-1) / numpy.linalg.norm(got, axis=-1) / numpy.linalg.norm(want, axis=-1)
        assert cosine.min() > 0.99
        assert not numpy.array_equal(got, want)
    got = links(nlp, texts)
    assert [[link[:4] for link in doc] for doc in got] == [[link[:4] for link in doc] for doc in expected]


def test_an_unknown_precision_is_refused_before_anything_changes(trained):
    nlp = spacy.load(trained[3])
    with pytest.raises(ValueError, match="fp16.*fp32, int8, bf16"):
        set_precision(nlp, "fp16")
    assert set_precision(nlp, "fp32") == 0
