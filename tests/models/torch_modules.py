"""Torch modules for the flavor tests, in an importable module so state dicts can load them.

Imported by tests/models/test_flavors.py only after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import torch


class Scriptable(torch.nn.Module):
    """A small classifier TorchScript can compile."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(30, 8)
        self.out = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


class NotScriptable(torch.nn.Module):
    """TorchScript rejects ``**kwargs`` in forward, so this one is saved as a state dict."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self._segue_init_kwargs = {"width": width}
        self.hidden = torch.nn.Linear(30, width)
        self.out = torch.nn.Linear(width, 3)

    def forward(self, x, **options):
        return self.out(torch.tanh(self.hidden(x)))
