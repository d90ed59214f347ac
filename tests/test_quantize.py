"""int8 dynamic quantization of a loaded pipeline: what it replaces, and that it still links."""

import spacy
import torch
from torch import nn

from spacy_beer2.model import get_module
from spacy_beer2.quantize import quantize_int8

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
