"""PyTorch: ``segue.torch.log_epoch`` in a hand-written loop, and the Lightning callback."""

from __future__ import annotations

import lightning
import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

import segue
import segue.torch
from segue.autologging import AutologWarning
from segue.tracking.client import get_client

EPOCHS = 3
# Lightning's own deprecation notice about torch's pytree API, not about these tests.
pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


@pytest.fixture(scope="module")
def iris() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in get_client().metric_history(run_id, key)]


def train_loop(X: torch.Tensor, y: torch.Tensor, **extra: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for epoch in range(EPOCHS):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        accuracy = (model(X).argmax(1) == y).float().mean().item()
        segue.torch.log_epoch(epoch, {"loss": loss}, optimizer=optimizer, acc=accuracy, **extra)
    return model


def test_segue_torch_is_reachable_from_the_package():
    assert segue.torch.log_epoch is segue.torch.__dict__["log_epoch"]
    assert issubclass(segue.torch.LightningCallback, lightning.pytorch.Callback)


def test_log_epoch_logs_each_epoch_as_a_step_with_the_learning_rate(segue_env, iris):
    with segue.start_run() as run:
        train_loop(*iris)
    stored = segue.get_run(run.id)
    assert [s for s, _ in history(run.id, "loss")] == list(range(EPOCHS))
    losses = [v for _, v in history(run.id, "loss")]
    assert losses[-1] < losses[0]
    assert [s for s, _ in history(run.id, "acc")] == list(range(EPOCHS))
    assert history(run.id, "lr") == [(e, 0.5) for e in range(EPOCHS)]
    assert stored.data.params["optimizer"] == "SGD"
    assert stored.data.params["optimizer_momentum"] == "0.9"


def test_log_epoch_without_a_run_starts_one_that_stays_active(segue_env, iris):
    train_loop(*iris)
    run = segue.active_run()
    assert run is not None
    assert segue.get_run(run.id).data.tags["autolog"] == "torch"
    segue.end_run()
    assert len(history(run.id, "loss")) == EPOCHS


def test_a_value_autolog_cannot_log_is_a_warning_and_training_goes_on(segue_env, iris):
    with segue.start_run() as run, pytest.warns(AutologWarning) as caught:
        model = train_loop(*iris, note="not a number")
    assert [str(w.message).split(" failed")[0] for w in caught] == [
        f"segue autolog: logging epoch {e}" for e in range(EPOCHS)
    ]
    assert model.weight.shape == (3, 4)
    assert segue.get_run(run.id).info.status == "FINISHED"


# -- Lightning ---------------------------------------------------------------------------------


class Classifier(lightning.LightningModule):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3)
        )
        self.example_input_array = torch.zeros(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Exploding(Classifier):
    def training_step(self, batch, index):
        if self.current_epoch == 1:
            raise FloatingPointError("loss is NaN")
        return super().training_step(batch, index)


def fit(module: lightning.LightningModule, iris, **callback: object) -> lightning.Trainer:
    X, y = iris
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=50)
    trainer = lightning.Trainer(
        max_epochs=EPOCHS,
        callbacks=[segue.torch.LightningCallback(**callback)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, loader, loader)
    return trainer


@pytest.mark.filterwarnings("ignore:.*torch.jit:DeprecationWarning")  # the torch flavor's format
@pytest.mark.filterwarnings("ignore::UserWarning:lightning")  # few workers, small batches
def test_the_lightning_callback_logs_params_epochs_and_a_loadable_model(segue_env, iris):
    torch.manual_seed(0)
    module = Classifier()
    fit(module, iris)
    table = segue.search_runs()
    assert len(table) == 1
    run_id = str(table.run_id[0])
    stored = segue.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert segue.active_run() is None  # the run it started, it ended
    assert stored.data.params["hidden"] == "16"
    assert stored.data.params["max_epochs"] == str(EPOCHS)
    assert stored.data.params["optimizer"] == "Adam"
    for key in ("train_loss", "val_acc", "lr"):
        assert [s for s, _ in history(run_id, key)] == list(range(EPOCHS))

    X, _ = iris
    loaded = segue.load_model(f"runs:/{run_id}/model")
    with torch.no_grad():
        expected = module(X[:10]).numpy()
    np.testing.assert_allclose(loaded.predict(X[:10].numpy()), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning:lightning")
def test_a_training_that_raises_fails_the_callbacks_run(segue_env, iris):
    with pytest.raises(FloatingPointError, match="NaN"):
        fit(Exploding(), iris, log_models=False)
    [status] = segue.search_runs().status
    assert status == "FAILED"
    assert segue.active_run() is None
