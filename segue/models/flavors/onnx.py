"""The ``onnx`` flavor: ONNX graphs, run with onnxruntime on the CPU.

An ONNX file is a protobuf graph, not pickle, so loading one runs no Python code from it.
The loaded model feeds its single input from a DataFrame or array and returns the first output;
classifiers converted by skl2onnx (with ``zipmap`` on or off) also get ``predict_proba`` from
their second output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segue.errors import InvalidArgument
from segue.models.flavors import Saved, _check_empty_dir, _pin, _version

if TYPE_CHECKING:
    import numpy as np

_FILE = "model.onnx"
#: onnxruntime's input type names -> the NumPy dtype a DataFrame is converted to (by name, so
#: importing this module does not import NumPy).
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxFlavor:
    """Saves an ``onnx.ModelProto``; loads an onnxruntime session behind ``predict``."""

    name = "onnx"

    def matches(self, model: object) -> bool:
        # A ModelProto implies onnx is already imported; this keeps detect_flavor from importing
        # onnx (or failing when it is not installed) for models of other kinds.
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: Any, path: Path) -> Saved:
        """Write ``model.onnx``; ``details`` records the graph's input and output names."""
        import onnx

        _check_empty_dir(path)
        onnx.save_model(model, path / _FILE)
        initializers = {init.name for init in model.graph.initializer}
        inputs = [i.name for i in model.graph.input if i.name not in initializers]
        return Saved(
            files=(_FILE,),
            pickle_based=False,
            framework="onnxruntime",
            framework_version=_version("onnxruntime"),
            requirements=(_pin("onnxruntime"), _pin("numpy")),
            details={
                "format": "onnx",
                "inputs": inputs,
                "outputs": [o.name for o in model.graph.output],
            },
        )

    def load(self, path: Path, details: dict[str, Any]) -> OnnxModel:
        """An :class:`OnnxModel`, or an :class:`OnnxClassifier` when it outputs probabilities."""
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(path / _FILE), providers=["CPUExecutionProvider"]
        )
        outputs = session.get_outputs()
        if len(outputs) > 1 and _is_probabilities(outputs[1]):
            return OnnxClassifier(session)
        return OnnxModel(session)


class OnnxModel:
    """An onnxruntime session with ``predict(X)``: X in, the first output out as an array."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def predict(self, X: Any) -> np.ndarray:
        import numpy as np

        return np.asarray(self._run(X)[0])

    def _run(self, X: Any) -> list[Any]:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise InvalidArgument(
                f"model: this ONNX model takes {len(inputs)} inputs ({names}); predict feeds "
                "exactly one, so call model.session.run with a dict of inputs instead"
            )
        if hasattr(X, "to_numpy"):  # a DataFrame: convert to the dtype the graph declares
            X = X.to_numpy(dtype=_DTYPES.get(inputs[0].type))
        return self.session.run(None, {inputs[0].name: X})


class OnnxClassifier(OnnxModel):
    """An :class:`OnnxModel` whose second output is class probabilities."""

    def predict_proba(self, X: Any) -> np.ndarray:
        import numpy as np

        probabilities = self._run(X)[1]
        if isinstance(probabilities, list):
            # ZipMap output: one {class: probability} dict per row, in the classes' order.
            if not probabilities:
                return np.empty((0, 0))
            classes = list(probabilities[0])
            return np.array([[row[c] for c in classes] for row in probabilities])
        return np.asarray(probabilities)


def _is_probabilities(output: Any) -> bool:
    if output.type.startswith("seq(map("):
        return True
    return output.type in ("tensor(float)", "tensor(double)") and len(output.shape or ()) == 2
