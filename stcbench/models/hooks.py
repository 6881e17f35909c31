"""Forward hooks that are removed when their `with` block ends."""
from __future__ import annotations

from torch import nn


class ForwardHooks:
    """Subclasses register with `add`; `with` removes every hook on leaving."""

    def __init__(self):
        self.handles = []

    def add(self, module: nn.Module, hook) -> None:
        self.handles.append(module.register_forward_hook(hook))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
