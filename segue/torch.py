"""PyTorch training loops, logged with one call per epoch or a Lightning callback.

A hand-written loop calls :func:`log_epoch` once an epoch::

    for epoch in range(20):
        loss = train_one_epoch(model, loader, optimizer)
        segue.torch.log_epoch(epoch, loss=loss, val_acc=evaluate(model), optimizer=optimizer)

Lightning users add the callback (when ``lightning`` or ``pytorch_lightning`` is installed)::

    trainer = lightning.Trainer(max_epochs=20, callbacks=[segue.torch.LightningCallback()])

It logs the trainer's settings, the optimizer and ``hparams`` as params, every metric the
module logs with ``self.log`` (its ``callback_metrics``) once an epoch at step = epoch, and the
trained module as a Segue package (``model``): traced into TorchScript with
``example_input_array`` as its input example when the module sets one, else as it is (which
needs a module TorchScript compiles or whose class can be imported). In distributed training
only the first process (``trainer.is_global_zero``) logs.

Both log into the active run, or start one (tagged ``autolog=torch``) when none is active: the
callback ends the run it started when fitting ends; a run started by :func:`log_epoch` stays
active until ``segue.end_run()`` or the end of the script. Like :func:`segue.autolog`, they never
break the training: what cannot be logged becomes an ``AutologWarning``.
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Mapping
from typing import Any

from segue.autologging import core
from segue.tracking.runs import ActiveRun

__all__ = ["log_epoch"]  # and LightningCallback, built on first use (needs Lightning)

FRAMEWORK = "torch"
#: Runs whose optimizer params :func:`log_epoch` has logged.
_optimizer_logged: set[str] = set()


def log_epoch(
    epoch: int,
    metrics: Mapping[str, Any] | None = None,
    *,
    optimizer: Any = None,
    **values: Any,
) -> None:
    """Log one epoch's metrics at step ``epoch`` into the active run.

    Args:
        epoch: the epoch number, used as the metrics' step.
        metrics: ``{name: value}``; values may be numbers or one-element tensors.
        optimizer: a ``torch.optim`` optimizer whose learning rate is logged as ``lr``
            (``lr_<i>`` for each parameter group beyond the first); on the first epoch of a run
            its class and defaults are logged as ``optimizer`` and ``optimizer_<name>`` params.
        values: more metrics as keyword arguments (``loss=0.3``).

    Example:
        >>> segue.torch.log_epoch(3, {"val_loss": val_loss}, loss=loss, optimizer=optimizer)
    """
    with core.safely(f"logging epoch {epoch}"):
        run = _run()
        numbers_ = {k: _number(v) for k, v in {**(metrics or {}), **values}.items()}
        if optimizer is not None:
            numbers_.update(_learning_rates(optimizer))
            if run.id not in _optimizer_logged:
                run.log_params(optimizer_params(optimizer))
                _optimizer_logged.add(run.id)
        run.log_metrics(numbers_, step=int(epoch))


def _run() -> ActiveRun:
    from segue.tracking import fluent

    active = fluent.active_run()
    return active if active is not None else fluent.start_run(tags={"autolog": FRAMEWORK})


def _number(value: Any) -> float:
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu().item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        value = float(value)
    return float(value)


def _learning_rates(optimizer: Any) -> dict[str, float]:
    groups = optimizer.param_groups
    return {
        ("lr" if i == 0 else f"lr_{i}"): float(group["lr"])
        for i, group in enumerate(groups)
        if "lr" in group
    }


def optimizer_params(optimizer: Any) -> dict[str, str]:
    """``optimizer`` (its class) and ``optimizer_<name>`` for each of its defaults."""
    params: dict[str, Any] = {"optimizer": type(optimizer).__name__}
    for key, value in getattr(optimizer, "defaults", {}).items():
        if isinstance(value, (int, float, str, bool, tuple)) or value is None:
            params[f"optimizer_{key}"] = value
    return core.param_values(params)


# -- Lightning --------------------------------------------------------------------------------


def _lightning_base() -> type:
    """Lightning's ``Callback`` (from ``lightning``, else the older ``pytorch_lightning``)."""
    for package in ("lightning.pytorch", "pytorch_lightning"):
        try:
            base: type = importlib.import_module(package).Callback
        except ImportError:
            continue
        return base
    from segue.errors import InvalidArgument

    raise InvalidArgument("segue.torch.LightningCallback needs Lightning: pip install lightning")


class _LightningLogging:
    """The callback's behaviour; :data:`LightningCallback` mixes it into Lightning's base."""

    def __init__(self, log_models: bool = True) -> None:
        self.log_models = log_models
        self._run: ActiveRun | None = None
        self._started = False

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        from segue.tracking import fluent

        if not getattr(trainer, "is_global_zero", True):
            return  # in distributed training, only the first process logs

        with core.safely("starting the run for the Lightning training"):
            active = fluent.active_run()
            self._started = active is None
            self._run = active or fluent.start_run(tags={"autolog": FRAMEWORK})
        if self._run is None:
            return
        with core.safely("logging the trainer's params"):
            params: dict[str, Any] = {
                "max_epochs": trainer.max_epochs,
                "accumulate_grad_batches": trainer.accumulate_grad_batches,
                "precision": trainer.precision,
            }
            if trainer.optimizers:
                params.update(optimizer_params(trainer.optimizers[0]))
            params.update({k: v for k, v in dict(getattr(pl_module, "hparams", {})).items()})
            self._run.log_params(core.param_values(params))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._run is None:
            return
        with core.safely(f"logging epoch {trainer.current_epoch}"):
            values = {k: _number(v) for k, v in trainer.callback_metrics.items()}
            if trainer.optimizers:
                values.update(_learning_rates(trainer.optimizers[0]))
            self._run.log_metrics(values, step=int(trainer.current_epoch))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._run is None:
            return
        if self.log_models:
            with core.safely("logging the trained module"):
                module, example = _traced(pl_module)
                self._run.log_model(module, "model", input_example=example)
        self._finish("FINISHED")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._finish("KILLED" if isinstance(exception, KeyboardInterrupt) else "FAILED")

    def _finish(self, status: str) -> None:
        run, self._run = self._run, None
        if run is not None and self._started:
            with core.safely("ending the Lightning training's run"):
                run.end(status)


def _traced(pl_module: Any) -> tuple[Any, Any]:
    """The module to log and its input example.

    A LightningModule rarely compiles with TorchScript, and its class is often defined in the
    training script: with an ``example_input_array`` it is traced into TorchScript (which
    loads without the class), and that array is the example. Without one it is logged as it
    is, which works when it scripts or its class is importable.
    """
    example: Any = getattr(pl_module, "example_input_array", None)
    if not hasattr(example, "detach"):
        return pl_module, None
    import torch

    # torch.jit.trace itself, not LightningModule.to_torchscript (deprecated in Lightning 2.7).
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad():
            traced = torch.jit.trace(pl_module, example)
    finally:
        pl_module.train(was_training)
    return traced, example.detach().cpu().numpy()


_callback_class: type | None = None


def __getattr__(name: str) -> Any:
    """``LightningCallback`` is built on first use, on the installed Lightning's ``Callback``."""
    global _callback_class
    if name != "LightningCallback":
        raise AttributeError(f"module 'segue.torch' has no attribute {name!r}")
    if _callback_class is None:
        _callback_class = type(
            "LightningCallback",
            (_LightningLogging, _lightning_base()),
            {
                "__module__": __name__,
                "__doc__": "A Lightning callback that logs the training into Segue "
                "(see :mod:`segue.torch`); ``LightningCallback(log_models=False)`` skips the "
                "model.",
            },
        )
    return _callback_class
