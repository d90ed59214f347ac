"""Lower-precision inference of a loaded pipeline on CPU: int8 dynamic quantization, or bfloat16.

Both are inference-time options applied after loading (the changed weights are not what training or ``to_disk``
expect); the entity encoder is left as it is, so the KB vectors and the index do not change. The README reports
the speed and EL F1 change of each.

int8: every PyTorch model the pipeline runs (the shared transformer, the linker's retriever and reader) gets its
``nn.Linear`` layers replaced by int8 dynamically quantized ones: weights in int8 with a scale per output row
(per channel: one scale per matrix cost twice the EL F1 on AIDA testa), activations quantized on the fly.
Linear layers inside ``nn.TransformerEncoderLayer`` (the reader's fusion layer) stay in float: torch's encoder
layer reads their ``weight`` as a tensor.

bf16: the transformers (the shared one, the reader's fusion layer) run in bfloat16, the rest of the linker in
float32 (``cast_bfloat16``).
"""

import functools
import warnings
from typing import Any, Callable, Iterator

from spacy.language import Language
from thinc.api import PyTorchShim

from .util import cast_tensors


def _torch_shims(nlp: Language, linker: bool = True) -> Iterator[PyTorchShim]:
    """The PyTorch shims of the pipeline's components (``linker = False``: not the beer2_linker's)."""
    from .pipeline import Beer2Linker

    seen = set()
    for _, proc in nlp.pipeline:
        if not linker and isinstance(proc, Beer2Linker):
            continue
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


def cast_bfloat16(nlp: Language) -> int:
    """Run the pipeline's transformers in bfloat16 (CPU only): the shared transformer and the linker's fusion
    layer; returns how many models were cast.

    Each cast model gets bf16 weights and takes its float inputs in bf16 (what transformers models do when loaded
    with ``torch_dtype=torch.bfloat16``); its outputs come back as float32, what thinc, numpy and the rest of the
    linker read. The rest of the linker stays in float32: its link scores are products of probabilities compared
    with a threshold of the order of 0.005, and the whole linker in bf16 cost 0.85 EL F1 on AIDA testa where the
    transformers alone in bf16 cost nothing (README). Worth it only on CPUs with bf16 units (AMX, AVX512-BF16;
    warned otherwise): elsewhere torch emulates bf16, which is expected to be slower than float32.
    """
    import torch
    from torch import nn

    from .model import get_module
    from .pipeline import Beer2Linker

    if not (_cpu_has("_is_amx_tile_supported") or _cpu_has("_is_avx512_bf16_supported")):
        warnings.warn("this CPU has no bfloat16 units (AMX or AVX512-BF16): bf16 inference will likely be slower "
                      "than float32 here", stacklevel=2)
    models = [shim._model for shim in _torch_shims(nlp, linker=False)]
    for _, proc in nlp.pipeline:
        if isinstance(proc, Beer2Linker):
            models += [m for m in get_module(proc.model).modules() if isinstance(m, nn.TransformerEncoder)]
    for model in models:
        if next(model.parameters()).device.type != "cpu":
            raise ValueError("bfloat16 inference runs on CPU only here: load the pipeline without a GPU")
    for model in models:
        model.to(torch.bfloat16).eval()
        model.forward = functools.partial(_forward_bfloat16, model.forward)
    return len(models)


def _cpu_has(check: str) -> bool:
    import torch

    return bool(getattr(torch.cpu, check, lambda: True)())  # (private checks: unknown means assume it has)


def _forward_bfloat16(forward: Callable, *args: Any, **kwargs: Any) -> Any:
    import torch

    bf16, fp32 = torch.bfloat16, torch.float32
    return cast_tensors(forward(*cast_tensors(args, fp32, bf16), **cast_tensors(kwargs, fp32, bf16)), bf16, fp32)


PRECISIONS = {"fp32": lambda nlp: 0, "int8": quantize_int8, "bf16": cast_bfloat16}


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")


def set_precision(nlp: Language, precision: str) -> int:
    """Apply an inference precision to a loaded pipeline: ``fp32`` (as trained), ``int8`` (``quantize_int8``) or
    ``bf16`` (``cast_bfloat16``); returns how many layers or models changed."""
    check_precision(precision)
    return PRECISIONS[precision](nlp)
