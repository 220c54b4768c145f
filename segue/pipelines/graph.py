"""Tracing a pipeline function into a DAG of step calls, and checking it before anything runs.

The pipeline function is called once with its params while a :class:`Tracing` is active:
every step call records a :class:`Node` and returns a :class:`Ref` (a placeholder for its
output) instead of running. Arguments that are ``Ref``\\ s become the node's inputs, the others
its params. Everything a run could trip over later is refused here with ``InvalidArgument``
naming the step and the param: a pipeline calling itself (directly or through another
pipeline), an output annotation no materializer stores, a missing, unknown or wrongly typed
param, a param that is not JSON-able.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from segue.errors import InvalidArgument
from segue.pipelines import materializers
from segue.pipelines.spec import TRACER, PipelineSpec, StepSpec

__all__ = ["Dag", "Node", "Ref", "bind_params", "parse_param", "trace"]


@dataclass(frozen=True)
class Ref:
    """The output ``output`` of DAG node ``node``, as seen while tracing."""

    node: str
    output: str = "output"

    def __repr__(self) -> str:
        return f"<output {self.output!r} of step {self.node!r}>"

    def __bool__(self) -> bool:
        raise InvalidArgument(
            f"the output of step {self.node!r} is not known while the pipeline is traced: "
            "branch on it inside a step, not in the pipeline function"
        )

    def __iter__(self) -> typing.Iterator[Any]:
        raise InvalidArgument(
            f"step {self.node!r} has one output; annotate it as tuple[...] to unpack several"
        )


@dataclass
class Node:
    """One step call in the DAG."""

    id: str
    spec: StepSpec
    inputs: dict[str, Ref] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("output",)
    kinds: dict[str, str | None] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The node as recorded in ``pipeline/dag.json``."""
        return {
            "id": self.id,
            "step": self.spec.function,
            "inputs": {arg: _ref_text(ref) for arg, ref in self.inputs.items()},
            "params": self.params,
            "outputs": list(self.outputs),
        }


def _ref_text(ref: Ref) -> str:
    return ref.node if ref.output == "output" else f"{ref.node}.{ref.output}"


@dataclass
class Dag:
    """The traced pipeline: nodes in call order (a topological order) and what it returns."""

    pipeline: PipelineSpec
    params: dict[str, Any]
    nodes: dict[str, Node]
    returned: tuple[Ref, ...] = ()

    def upstream(self, node: str) -> set[str]:
        return {ref.node for ref in self.nodes[node].inputs.values()}

    def downstream(self, node: str) -> set[str]:
        """Every node that depends on ``node``, directly or not."""
        found: set[str] = set()
        for other in self.nodes.values():  # call order is topological
            if other.id != node and (self.upstream(other.id) & (found | {node})):
                found.add(other.id)
        return found

    def describe(self, target: str) -> dict[str, Any]:
        return {"pipeline": target, "nodes": [n.describe() for n in self.nodes.values()]}


class Tracing:
    """Records step calls; installed as the context's tracer by :func:`trace`."""

    def __init__(self, root: PipelineSpec) -> None:
        self.nodes: dict[str, Node] = {}
        self.stack: list[PipelineSpec] = [root]

    def call_step(self, spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        node_id = self._node_id(spec.name)
        bound = _bind(spec.fn, args, kwargs, f"step {node_id!r}")
        hints = _hints(spec.fn)
        node = Node(node_id, spec)
        for arg, value in bound.items():
            if isinstance(value, Ref):
                node.inputs[arg] = value
            elif _holds_ref(value):
                raise InvalidArgument(
                    f"step {node_id!r}, argument {arg!r}: pass a step's output directly, not "
                    "inside a list or dict (make a step that combines them)"
                )
            else:
                node.params[arg] = _check_param(f"step {node_id!r}", arg, value, hints.get(arg))
        node.outputs, node.kinds = _outputs(node_id, spec, hints.get("return", Any))
        self.nodes[node_id] = node
        if len(node.outputs) > 1:
            return tuple(Ref(node_id, name) for name in node.outputs)
        return Ref(node_id)

    def call_pipeline(
        self, spec: PipelineSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if spec in self.stack:
            chain = " -> ".join(p.name for p in [*self.stack[self.stack.index(spec) :], spec])
            raise InvalidArgument(f"pipeline {spec.name!r} calls itself ({chain}): a cycle")
        self.stack.append(spec)
        try:
            return spec.fn(*args, **kwargs)
        finally:
            self.stack.pop()

    def _node_id(self, name: str) -> str:
        if name not in self.nodes:
            return name
        n = 2
        while f"{name}-{n}" in self.nodes:
            n += 1
        return f"{name}-{n}"


def trace(spec: PipelineSpec, params: Mapping[str, Any]) -> Dag:
    """Call the pipeline function with ``params`` (already bound) and record its DAG.

    Raises:
        InvalidArgument: a bad definition (see the module docstring), or a pipeline that
            calls no step.
    """
    tracing = Tracing(spec)
    token = TRACER.set(tracing)
    try:
        result = spec.fn(**params)
    except RecursionError as exc:
        raise InvalidArgument(f"pipeline {spec.name!r} calls itself: a cycle") from exc
    finally:
        TRACER.reset(token)
    if not tracing.nodes:
        raise InvalidArgument(f"pipeline {spec.name!r} calls no step (mark them @segue.step)")
    if isinstance(result, Ref):
        returned: tuple[Ref, ...] = (result,)
    elif isinstance(result, tuple) and result and all(isinstance(r, Ref) for r in result):
        returned = result
    elif result is None:
        returned = ()
    else:
        raise InvalidArgument(
            f"pipeline {spec.name!r} returns {type(result).__name__}: return a step's output "
            "(or nothing)"
        )
    return Dag(spec, dict(params), tracing.nodes, returned)


def bind_params(spec: PipelineSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's params, every one known, given (or defaulted) and of the right type.

    Raises:
        InvalidArgument: naming the pipeline and the param.
    """
    where = f"pipeline {spec.name!r}"
    signature = inspect.signature(spec.fn)
    hints = _hints(spec.fn)
    accepted = {
        name
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    unknown = sorted(set(params) - accepted)
    if unknown:
        known = ", ".join(sorted(accepted)) or "none"
        raise InvalidArgument(f"{where}: unknown param {unknown[0]!r} (its params: {known})")
    bound: dict[str, Any] = {}
    for name in signature.parameters:
        if name not in accepted:
            continue
        parameter = signature.parameters[name]
        if name in params:
            value = params[name]
        elif parameter.default is not inspect.Parameter.empty:
            value = parameter.default
        else:
            raise InvalidArgument(f"{where}: missing param {name!r} (pass --param {name}=...)")
        bound[name] = _check_param(where, name, value, hints.get(name))
    return bound


def parse_param(spec: PipelineSpec, text: str) -> tuple[str, Any]:
    """``k=v`` from the command line, ``v`` parsed by the annotation of the param ``k``.

    int, float, bool (true/false/1/0/yes/no), str as given; list, dict and anything else as
    JSON. An unannotated param takes JSON when it parses, else the text.

    Raises:
        InvalidArgument: no ``=``, an unknown param, or a value its type cannot parse.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidArgument(f"--param takes key=value, got {text!r}")
    hints = _hints(spec.fn)
    parameters = inspect.signature(spec.fn).parameters
    if key not in parameters:
        known = ", ".join(parameters) or "none"
        raise InvalidArgument(
            f"pipeline {spec.name!r}: unknown param {key!r} (its params: {known})"
        )
    annotation = _unoptional(hints.get(key, Any))
    try:
        if annotation is str:
            return key, raw
        if annotation is bool:
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return key, lowered in ("true", "1", "yes")
        if annotation is int:
            return key, int(raw)
        if annotation is float:
            return key, float(raw)
        if annotation is Any:
            try:
                return key, json.loads(raw)
            except ValueError:
                return key, raw
        return key, json.loads(raw)
    except ValueError:
        raise InvalidArgument(
            f"pipeline {spec.name!r}: param {key!r} takes {_type_name(annotation)}, got {raw!r}"
        ) from None


# -- checks ---------------------------------------------------------------------------------


def _bind(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> dict[str, Any]:
    signature = inspect.signature(fn)
    for name in kwargs:
        if name not in signature.parameters:
            raise InvalidArgument(f"{where}: unknown param {name!r}")
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        missing = [
            name
            for i, (name, p) in enumerate(signature.parameters.items())
            if p.default is inspect.Parameter.empty and name not in kwargs and i >= len(args)
        ]
        if missing:
            raise InvalidArgument(f"{where}: missing param {missing[0]!r}") from None
        raise InvalidArgument(f"{where}: {exc}") from None
    bound.apply_defaults()
    for name, p in signature.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidArgument(f"{where}: *{name} arguments cannot be traced; name each one")
    return dict(bound.arguments)


def _holds_ref(value: Any) -> bool:
    if isinstance(value, (list, tuple, set)):
        return any(_holds_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_ref(v) for v in value.values())
    return isinstance(value, Ref)


def _check_param(where: str, name: str, value: Any, annotation: Any) -> Any:
    if not materializers.json_able(value):
        raise InvalidArgument(
            f"{where}: param {name!r} must be JSON-able (numbers, strings, lists, dicts) or a "
            f"step's output, got {type(value).__name__}"
        )
    if annotation is not None and not _matches(value, annotation):
        raise InvalidArgument(
            f"{where}: param {name!r} must be {_type_name(annotation)}, got {value!r}"
        )
    return list(value) if isinstance(value, tuple) else value


def _matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation``; types it cannot judge are given the benefit."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin is typing.Annotated:
        return _matches(value, typing.get_args(annotation)[0])
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return len(args) != 1 or all(_matches(v, args[0]) for v in value)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return False
        pair = typing.get_args(annotation)
        return len(pair) != 2 or all(_matches(v, pair[1]) for v in value.values())
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _outputs(
    node: str, spec: StepSpec, annotation: Any
) -> tuple[tuple[str, ...], dict[str, str | None]]:
    """The step's output names and their materializer kinds, from its return annotation."""
    origin = typing.get_origin(annotation)
    parts = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if origin is tuple and parts and Ellipsis not in typing.get_args(annotation):
        names = tuple(f"output.{i}" for i in range(len(parts)))
        annotations = parts
    else:
        names, annotations = ("output",), [annotation]
    kinds: dict[str, str | None] = {}
    for name, part in zip(names, annotations, strict=True):
        try:
            kinds[name] = materializers.kind_for_annotation(part, pickle=spec.pickle)
        except materializers.Unmaterializable as exc:
            raise InvalidArgument(
                f"step {node!r}: output {name!r}: {exc}; return a DataFrame, an array, a model "
                "or JSON-able data, or mark the step @segue.step(pickle=True)"
            ) from None
    return names, kinds


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except (NameError, AttributeError, TypeError, SyntaxError):
        # A string annotation naming what is imported only for type checkers: judge the
        # annotations that are real objects, and leave the others to the values.
        raw = getattr(fn, "__annotations__", {})
        return {name: value for name, value in raw.items() if not isinstance(value, str)}


def _unoptional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
