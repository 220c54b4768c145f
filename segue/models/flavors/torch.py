"""The ``torch`` flavor: ``torch.nn.Module`` as TorchScript, or as a state dict.

TorchScript is preferred: the file holds the code and the weights, so loading needs no Python
class. A module that cannot be scripted is saved as its ``state_dict`` plus the import path of
its class, which must then be importable and constructible from the recorded keyword arguments
(``model._segue_init_kwargs``, empty by default). Both formats load without executing pickle:
TorchScript archives hold no Python objects, and the state dict is read with
``torch.load(weights_only=True)``.

torch is an optional extra, imported only inside these functions.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segue.errors import InvalidArgument
from segue.models.flavors import Saved, _check_empty_dir, _detail, _pin, _version

if TYPE_CHECKING:
    import numpy as np

_SCRIPT_FILE = "model.pt"
_WEIGHTS_FILE = "weights.pt"


class TorchFlavor:
    """Saves a ``torch.nn.Module``; loads it behind ``predict`` / ``predict_proba``."""

    name = "torch"

    def matches(self, model: object) -> bool:
        # A Module instance implies torch is already imported; checking sys.modules keeps
        # detect_flavor from paying torch's import time (or failing) for other models.
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(self, model: Any, path: Path) -> Saved:
        """Save TorchScript when the module is (or can be) scripted, else its state dict.

        Raises:
            InvalidArgument: when the module cannot be scripted and its class cannot be
                imported by name or built from the recorded keyword arguments.
        """
        import torch

        _check_empty_dir(path)
        script = _script(model)
        if script is not None:
            torch.jit.save(script, str(path / _SCRIPT_FILE))
            return _saved(_SCRIPT_FILE, {"format": "torchscript"})
        details: dict[str, Any] = {"format": "state_dict", "class": _class_path(model)}
        init_kwargs = _init_kwargs(model)
        if init_kwargs:
            details["init_kwargs"] = init_kwargs
        torch.save(model.state_dict(), path / _WEIGHTS_FILE)
        return _saved(_WEIGHTS_FILE, details)

    def load(self, path: Path, details: dict[str, Any]) -> TorchModel:
        """A :class:`TorchModel` around the loaded module, on the CPU, in eval mode."""
        import torch

        fmt = _detail(details, "format", self.name)
        if fmt == "torchscript":
            module = torch.jit.load(str(path / _SCRIPT_FILE), map_location="cpu")
        elif fmt == "state_dict":
            path_name = _detail(details, "class", self.name)
            cls = _import_class(path_name)
            # details come from a file: never call anything but a Module class with them.
            if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
                raise InvalidArgument(f"details: {path_name} is not a torch.nn.Module class")
            module = cls(**details.get("init_kwargs", {}))
            state = torch.load(path / _WEIGHTS_FILE, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        else:
            raise InvalidArgument(
                f"details: unknown torch format {fmt!r}; expected 'torchscript' or 'state_dict'"
            )
        module.eval()
        return TorchModel(module)


class TorchModel:
    """A torch module with ``predict(X)``: X as float32 in, the output as a NumPy array out."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def predict(self, X: Any) -> np.ndarray:
        return self._forward(X).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """The softmax of the outputs over classes.

        Raises:
            InvalidArgument: when the output is not 2-D with more than one column.
        """
        import torch

        output = self._forward(X)
        if output.ndim != 2 or output.shape[1] < 2:
            raise InvalidArgument(
                f"model: predict_proba needs a 2-D output with more than one column (one per "
                f"class); this torch module returned shape {tuple(output.shape)}"
            )
        return torch.softmax(output, dim=1).numpy()

    def _forward(self, X: Any) -> Any:
        import numpy as np
        import torch

        # A C-ordered copy: DataFrames hand out read-only, column-major arrays; torch will not
        # wrap the former, and the latter can take other kernels and round differently.
        tensor = torch.from_numpy(np.array(X, dtype=np.float32, order="C"))
        self.module.eval()
        with torch.no_grad():
            output = self.module(tensor)
        if not isinstance(output, torch.Tensor):
            raise InvalidArgument(
                f"model: predict needs the torch module to return one tensor; it returned a "
                f"{type(output).__name__}"
            )
        return output.detach().cpu()


def _script(model: Any) -> Any:
    """``model`` as a ScriptModule, or None when TorchScript cannot compile it."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        return torch.jit.script(model)
    # TorchScript reports unsupported Python in many exception types (NotSupportedError,
    # RuntimeError, TypeError, ...); any of them means "save the state dict instead".
    except Exception:
        return None


def _class_path(model: Any) -> str:
    cls = type(model)
    path = f"{cls.__module__}:{cls.__qualname__}"
    fix = (
        "define the class at the top level of an importable module, or make it scriptable "
        "with torch.jit.script"
    )
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise InvalidArgument(
            f"model: {cls.__qualname__} cannot be scripted with TorchScript and its class "
            f"({path}) cannot be imported when loading; {fix}"
        )
    try:
        found = _import_class(path)
    except InvalidArgument:
        found = None
    if found is not cls:
        raise InvalidArgument(f"model: importing {path} does not give back its class; {fix}")
    return path


def _init_kwargs(model: Any) -> dict[str, Any]:
    kwargs = getattr(model, "_segue_init_kwargs", None) or {}
    name = type(model).__qualname__
    if not isinstance(kwargs, dict):
        raise InvalidArgument(f"model: {name}._segue_init_kwargs must be a dict of JSON values")
    try:
        json.dumps(kwargs)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"model: {name}._segue_init_kwargs must hold only JSON values (numbers, strings, "
            "lists, dicts) so they can be recorded"
        ) from None
    try:
        inspect.signature(type(model)).bind(**kwargs)
    except TypeError as exc:
        raise InvalidArgument(
            f"model: {name} cannot be rebuilt as {name}(**_segue_init_kwargs) ({exc}); set "
            "model._segue_init_kwargs to the keyword arguments its constructor needs"
        ) from None
    return kwargs


def _import_class(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(
            f"model: cannot import the torch module class {path} ({exc}); install or put on "
            "sys.path the package that defines it"
        ) from None
    return obj


def _saved(file: str, details: dict[str, Any]) -> Saved:
    return Saved(
        files=(file,),
        pickle_based=False,
        framework="torch",
        framework_version=_version("torch"),
        requirements=(_pin("torch"), _pin("numpy")),
        details=details,
    )
