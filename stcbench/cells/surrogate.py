"""Surrogate gradients for the Heaviside spike function, as swappable objects.

Each surrogate is a small nn.Module (no parameters, no state_dict entries) called on
`x = v - threshold`. Forward is the Heaviside step (`x >= 0`, or `x > 0` when `strict`);
backward multiplies the incoming gradient by `derivative(x)`.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class _HeavisideWithSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, surrogate):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype) if surrogate.strict else (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return ctx.surrogate.backward_product(grad_output, x), None


class Surrogate(nn.Module):
    """Base class: subclasses define `derivative(x)`."""

    name = "surrogate"

    def __init__(self, strict: bool = False):
        super().__init__()
        self.strict = strict

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward_product(self, grad_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """grad_output * derivative(x); subclasses may fuse it."""
        return grad_output * self.derivative(x)

    def fused_backward(self) -> str | None:
        """How the fused kernels may take this spike's backward: "derivative" (grad * derivative(x)), "sigmoid"
        (the same, finished inside the kernels from sig(alpha x)), or None (not fusable)."""
        kind = type(self)
        stock = kind.forward is Surrogate.forward and kind.backward_product is Surrogate.backward_product
        return "derivative" if stock else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _HeavisideWithSurrogate.apply(x, self)

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_") and k != "training")
        return params


class Sigmoid(Surrogate):
    """spikingjelly `surrogate.Sigmoid`: d/dx = alpha * sig(alpha x) * (1 - sig(alpha x))."""

    name = "sigmoid"

    def __init__(self, alpha: float = 4.0, strict: bool = False):
        super().__init__(strict)
        self.alpha = alpha

    def derivative(self, x):
        sig = torch.sigmoid(self.alpha * x)
        return self.alpha * sig * (1.0 - sig)

    def fused_backward(self) -> str | None:
        return "sigmoid" if type(self) is Sigmoid else super().fused_backward()

    def backward_product(self, grad_output, x):
        # one fused kernel for grad * sig * (1 - sig) instead of four passes
        return torch.ops.aten.sigmoid_backward(grad_output * self.alpha, torch.sigmoid(self.alpha * x))


class ATan(Surrogate):
    """spikingjelly `surrogate.ATan`: d/dx = (alpha/2) / (1 + (pi/2 * alpha * x)^2)."""

    name = "atan"

    def __init__(self, alpha: float = 2.0, strict: bool = False):
        super().__init__(strict)
        self.alpha = alpha

    def derivative(self, x):
        return (self.alpha / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * x) ** 2)


class Triangle(Surrogate):
    """d/dx = max(0, 1 - |x| / width) (TC-LIF and LM-H author code use width 1)."""

    name = "triangle"

    def __init__(self, width: float = 1.0, strict: bool = False):
        super().__init__(strict)
        self.width = width

    def derivative(self, x):
        return torch.clamp(1.0 - x.abs() / self.width, min=0.0)


class Rectangle(Surrogate):
    """Boxcar: d/dx = height * 1[|x| < half_width] (GLIF: 0.5/1.0; CE-LIF Eq. 7: Gamma/1.0)."""

    name = "rectangle"

    def __init__(self, half_width: float = 0.5, height: float = 1.0, strict: bool = False):
        super().__init__(strict)
        self.half_width = half_width
        self.height = height

    def derivative(self, x):
        return (x.abs() < self.half_width).to(x.dtype) * self.height


SURROGATES = {
    "sigmoid": Sigmoid,
    "sigmoid4": lambda: Sigmoid(alpha=4.0),
    "atan": ATan,
    "atan2": lambda: ATan(alpha=2.0),
    "triangle": Triangle,
    "rectangle": Rectangle,
}


def build_surrogate(spec) -> Surrogate:
    """A surrogate from an object, a name (`sigmoid4`, `atan2`, ...) or a dict {name, **kwargs}."""
    from stcbench.errors import ConfigError

    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = str(kwargs.pop("name", "")).lower()
        if name not in SURROGATES:
            raise ConfigError(f"unknown surrogate {name!r}; choose one of {sorted(SURROGATES)}")
        return SURROGATES[name](**kwargs)
    raise ConfigError(f"surrogate must be a name or a mapping, got {spec!r}")
