"""int8 dynamic quantization of a loaded pipeline, for faster CPU inference.

Every PyTorch model the pipeline runs (the shared transformer, the linker's retriever and reader) gets its
``nn.Linear`` layers replaced by int8 dynamically quantized ones: weights in int8 with a scale per output row
(per channel: one scale per matrix cost twice the EL F1 on AIDA testa), activations quantized on the fly.
It is an inference-time option applied after loading (quantized weights are not what training or ``to_disk``
expect); the entity encoder is left as it is, so the KB vectors and the index do not change. Linear layers inside
``nn.TransformerEncoderLayer`` (the reader's fusion layer) stay in float: torch's encoder layer reads their
``weight`` as a tensor. The README reports the speed and EL F1 change.
"""

import warnings
from typing import Iterator

from spacy.language import Language
from thinc.api import PyTorchShim


def _torch_shims(nlp: Language) -> Iterator[PyTorchShim]:
    seen = set()
    for _, proc in nlp.pipeline:
        model = getattr(proc, "model", None)
        if model is None or not hasattr(model, "walk"):
            continue
        for node in model.walk():
            for shim in node.shims:
                if isinstance(shim, PyTorchShim) and id(shim) not in seen:
                    seen.add(id(shim))
                    yield shim


def quantize_int8(nlp: Language) -> int:
    """Quantize the pipeline's torch Linear layers in place (CPU only); returns how many were replaced."""
    import torch
    from torch import nn
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    replaced = 0
    for shim in _torch_shims(nlp):
        model = shim._model
        kept_float = {f"{name}.{sub}" if name else sub for name, layer in model.named_modules()
                      if isinstance(layer, nn.TransformerEncoderLayer) for sub, _ in layer.named_modules()}
        linears = [name for name, m in model.named_modules() if type(m) is nn.Linear and name not in kept_float]
        if not linears:
            continue
        if next(model.parameters()).device.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on CPU only: load the pipeline without a GPU")
        with warnings.catch_warnings():  # torch announces a move of this API to torchao; it works in 2.x
            warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
            shim._model = quantize_dynamic(model.eval(), {name: per_channel_dynamic_qconfig for name in linears},
                                           dtype=torch.qint8)
        replaced += len(linears)
    return replaced
