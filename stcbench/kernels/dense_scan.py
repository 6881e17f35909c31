"""A spiking cell's whole sequence on the linear synapse (dense networks, memory probes) as one autograd function.

Per step a dense layer computes, from the input currents X_t (the input synapse, evaluated for all steps at once):

    I_t  = X_t + W s_{t-1}                     optional recurrent synapse (no norm)
    A_t, B_t = gates(s_{t-1})                  optional spatio-temporal circuit (history and input gate; the
                                               circuit input detached, `gradient_detach=1`)
    state_t = neuron(B_t I_t, state_{t-1}, history gate A_t)

The per-step module calls cost far more than the arithmetic on [B, C] tensors.  Here the forward runs the loop
without autograd, a few in-place tensor operations per step, and keeps the sequences it needs; the backward is
written out (below, per neuron form) and runs the reverse loop the same way; everything that is not sequential
(the surrogate derivative, the gradients of the coefficients, the recurrent weight and the gates) is computed for
all steps at once.  The circuit's two grouped linear maps are one matmul with block-diagonal weights, and its
gates for the backward are recomputed for all steps in one batched autograd graph from the (detached) spikes.
Values and gradients equal the per-step cell loop up to round-off (tests/memory/test_dense_scan.py, float64).

Cells opt in by declaring their neuron in one of the forms below (`dense_scan()` on the cell, returning a
`DenseScan`, or None); nothing here looks at a cell's class.

* `OneCompartment`: u = c_h (A h) + c_i (B I),  s = H(u - theta),  h = reset(u, s)           (LIF, PLIF)
* `AdaptiveThreshold`: Theta_t = beta (Theta_{t-1} - Theta0) + gamma s_{t-1} + e_t V_{t-1} + Theta0,
  V_t = alpha (A V_{t-1}) (1 - s_{t-1}) + B I,  s = H(V - Theta)                            (ALIF, CE-LIF)
* `TwoCompartment`: d_t = d_{t-1} - k_d h_{t-1} + B I - r sg(s_{t-1}),
  h_t = A h_{t-1} + k_s d_t - sg(s_{t-1}),  s = H(h - theta)                                (TC-LIF reference)
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from stcbench.cells.dense import RESETS, AdaptiveThreshold, DenseScan, OneCompartment


def surrogate_ok(surrogate) -> bool:
    """The spike is the stock Heaviside whose backward is grad * derivative(x) (see surrogate.py)."""
    declare = getattr(surrogate, "fused_backward", None)
    return callable(declare) and declare() is not None


def scan_of(cell) -> DenseScan | None:
    declare = getattr(cell, "dense_scan", None)
    scan = declare() if callable(declare) else None
    if scan is None or not surrogate_ok(scan.neuron.surrogate):
        return None
    if isinstance(scan.neuron, OneCompartment) and scan.neuron.reset not in RESETS:
        return None
    return scan


# -- the circuit ---------------------------------------------------------------------------------------------
def _dense(synapse) -> torch.Tensor:
    """[out, in] matrix of a grouped Conv1d with kernel 1 (block-diagonal)."""
    conv = synapse[0]
    weight = conv.weight.squeeze(-1)
    if conv.groups == 1:
        return weight
    return torch.block_diag(*weight.split(conv.out_channels // conv.groups))


class Circuit:
    """Both gates from one matmul: (A, B) = 1 + tanh(norm(g W^T)) for each circuit (None when absent)."""

    def __init__(self, circuit, channels: int):
        self.present = tuple(s is not None for s in circuit)
        self.synapses = [s for s in circuit if s is not None]
        self.weight = torch.cat([_dense(s) for s in self.synapses]).t()          # [C, k C]
        self.channels = channels
        norms = [s[1] if len(s) > 1 else None for s in self.synapses]
        layer = [isinstance(n, torch.nn.LayerNorm) and n.elementwise_affine for n in norms]
        self.joint = all(layer) and len({n.eps for n in norms}) == 1
        if self.joint:
            self.eps = norms[0].eps
            self.gamma = torch.stack([n.weight for n in norms])
            self.beta = torch.stack([n.bias for n in norms])
        self.norms = norms

    def __call__(self, g: torch.Tensor):
        z = g.matmul(self.weight).unflatten(-1, (len(self.synapses), self.channels))    # [N, k, C]
        if self.joint:
            z = F.layer_norm(z, (self.channels,), None, None, self.eps) * self.gamma + self.beta
            gates = torch.tanh(z).add_(1) if not torch.is_grad_enabled() else 1 + torch.tanh(z)
            parts = gates.unbind(-2)
        else:
            parts = [1 + torch.tanh(zi if n is None else n(zi)) for zi, n in zip(z.unbind(-2), self.norms)]
        parts = iter(parts)
        return tuple(next(parts) if p else None for p in self.present)


# -- the scan ------------------------------------------------------------------------------------------------
def _value(c):
    return c.detach() if torch.is_tensor(c) else c


def _one(c) -> bool:
    return not torch.is_tensor(c) and c == 1


def _fire(q: torch.Tensor, surrogate) -> torch.Tensor:
    return (q > 0).to(q.dtype) if surrogate.strict else (q >= 0).to(q.dtype)


class _Run:
    """The forward's sequences for the backward."""


def _forward(neuron, X, W, circuit):
    """No-grad loop; X [T, B, C]. Returns the run (spikes run.S [T, B, C] and what the backward needs)."""
    T, B, C = X.shape
    run = _Run()
    run.S = S = torch.empty_like(X)
    run.I = I_all = torch.empty_like(X) if (W is not None or circuit is not None) else X
    run.A = torch.empty_like(X) if circuit is not None and circuit.present[0] else None
    run.B = torch.empty_like(X) if circuit is not None and circuit.present[1] else None
    zeros = X.new_zeros(B, C)
    spike = zeros
    kind = type(neuron)
    if kind is OneCompartment:
        run.Hprev = Hprev = torch.empty_like(X)
        run.U = U = torch.empty_like(X)
        c_h, c_i = _value(neuron.c_h), _value(neuron.c_i)
        mem = zeros
    elif kind is AdaptiveThreshold:
        run.Vprev = Vprev = torch.empty_like(X)
        run.Q = Q = torch.empty_like(X)
        run.Sprev = None
        enc = None if neuron.encoding is None else neuron.encoding.detach()
        mem, theta = zeros, torch.full_like(zeros, neuron.threshold)
    else:
        run.Hprev = Hprev = torch.empty_like(X)
        run.D = D = torch.empty_like(X)
        run.Hnew = Hnew = torch.empty_like(X)
        k_d, k_s, r = _value(neuron.k_d), _value(neuron.k_s), _value(neuron.r)
        mem, dend = zeros, zeros
    for t in range(T):
        current = X[t]
        if W is not None:
            current = torch.addmm(current, spike, W, out=I_all[t]) if t else I_all[t].copy_(current)
        elif circuit is not None:
            I_all[t].copy_(current)
        history = None
        if circuit is not None:
            a, b = circuit(spike)
            if a is not None:
                run.A[t].copy_(a)
                history = a
            if b is not None:
                run.B[t].copy_(b)
                current = current * b
        if kind is OneCompartment:
            Hprev[t].copy_(mem)
            hist = mem if history is None else history * mem
            u = U[t].copy_(hist) if _one(c_h) else torch.mul(hist, c_h, out=U[t])
            u.add_(current if _one(c_i) else current * c_i)
            spike = torch.sub(u, neuron.threshold).ge_(0) if not neuron.surrogate.strict else \
                torch.sub(u, neuron.threshold).gt_(0)
            spike = S[t].copy_(spike)
            mem = u * (1.0 - spike) if neuron.reset == "hard_detached" else u - spike * neuron.threshold
        elif kind is AdaptiveThreshold:
            Vprev[t].copy_(mem)
            if enc is not None:
                theta = neuron.beta * (theta - neuron.threshold) + enc[min(t, enc.shape[0] - 1)] * mem \
                    + neuron.threshold
            else:
                theta = neuron.beta * (theta - neuron.threshold) + neuron.gamma * spike + neuron.threshold
            hist = mem if history is None else history * mem
            mem = neuron.alpha * hist * (1.0 - spike) + current
            q = torch.sub(mem, theta, out=Q[t])
            spike = S[t].copy_(_fire(q, neuron.surrogate))
        else:
            Hprev[t].copy_(mem)
            dend = torch.sub(dend, mem * k_d, out=D[t]).add_(current).sub_(r * spike)
            hist = mem if history is None else history * mem
            mem = torch.add(hist, dend * k_s, out=Hnew[t]).sub_(spike)
            spike = S[t].copy_(_fire(mem - neuron.threshold, neuron.surrogate))
    return run


def _sum_to(grad: torch.Tensor, like) -> torch.Tensor | None:
    if not (torch.is_tensor(like) and like.requires_grad):
        return None
    return grad.sum().reshape(like.shape) if like.numel() == 1 else grad


class _Scan(torch.autograd.Function):
    """Outputs the spikes of `run` (computed by `_forward`); inputs: X, W^T, gates A, B (batched, in the graph),
    the neuron's tensor coefficients."""

    @staticmethod
    def forward(ctx, X, Wt, A, Bg, c1, c2, c3, run, neuron):
        ctx.run, ctx.neuron = run, neuron
        ctx.save_for_backward(Wt, A, Bg, c1, c2, c3)
        return run.S.view_as(run.S)

    @staticmethod
    def backward(ctx, dS):
        Wt, A, Bg, c1, c2, c3 = ctx.saved_tensors
        run, neuron = ctx.run, ctx.neuron
        A, Bv = run.A, run.B                              # the gate values used in the forward
        T, B, C = dS.shape
        dS = dS.contiguous()
        dIg = torch.empty_like(dS)                        # gradient of the gated current B I
        dHist = torch.empty_like(dS) if A is not None else None
        W = None if Wt is None else Wt.t()
        ds_carry = None
        surrogate = neuron.surrogate
        kind = type(neuron)
        grads = [None, None, None]
        if kind is OneCompartment:
            D = surrogate.derivative(run.U - neuron.threshold)
            c_h, c_i = _value(neuron.c_h), _value(neuron.c_i)
            dU = torch.empty_like(dS)
            dh = None
            for t in range(T - 1, -1, -1):
                ds = dS[t] if ds_carry is None else dS[t] + ds_carry
                if dh is not None:
                    if neuron.reset == "soft":
                        ds = ds - dh * neuron.threshold
                    du = torch.addcmul(dh if neuron.reset != "hard_detached" else dh * (1.0 - run.S[t]),
                                       ds, D[t], out=dU[t])
                else:
                    du = torch.mul(ds, D[t], out=dU[t])
                dhist = du if _one(c_h) else du * c_h
                if A is not None:
                    dHist[t].copy_(dhist)
                    dh = dhist * A[t]
                else:
                    dh = dhist
                dig = dIg[t].copy_(du) if _one(c_i) else torch.mul(du, c_i, out=dIg[t])
                if W is not None and t:
                    di = dig if Bv is None else dig * Bv[t]
                    ds_carry = di.matmul(W)
            hist = run.Hprev if A is None else A * run.Hprev
            grads[0] = _sum_to(dU * hist, neuron.c_h)
            grads[1] = _sum_to(dU * (run.I if Bv is None else Bv * run.I), neuron.c_i)
        elif kind is AdaptiveThreshold:
            D = surrogate.derivative(run.Q)
            dV = dTheta = None
            Sprev = torch.cat([run.S.new_zeros(1, B, C), run.S[:-1]])
            enc = None if neuron.encoding is None else neuron.encoding.detach()
            dThetaAll = torch.empty_like(dS) if enc is not None else None
            alpha, beta = neuron.alpha, neuron.beta
            for t in range(T - 1, -1, -1):
                ds = dS[t] if ds_carry is None else dS[t] + ds_carry
                dq = ds * D[t]
                dv = dq if dV is None else dV + dq
                dth = -dq if dTheta is None else dTheta - dq
                dIg[t].copy_(dv)
                vprev = run.Vprev[t]
                hist = vprev if A is None else A[t] * vprev
                dhist = alpha * (1.0 - Sprev[t]) * dv
                if A is not None:
                    dHist[t].copy_(dhist)
                    dV = dhist * A[t]
                else:
                    dV = dhist
                dTheta = beta * dth
                if enc is not None:
                    dThetaAll[t].copy_(dth)
                    dV = dV + enc[min(t, enc.shape[0] - 1)] * dth
                if t:
                    ds_carry = -alpha * hist * dv
                    if neuron.gamma is not None and neuron.gamma != 0:
                        ds_carry = ds_carry + neuron.gamma * dth
                    if W is not None:
                        di = dv if Bv is None else dv * Bv[t]
                        ds_carry = ds_carry + di.matmul(W)
            if enc is not None and neuron.encoding.requires_grad:
                rows = (dThetaAll * run.Vprev).sum(1)                     # [T, C]
                index = torch.arange(T, device=dS.device).clamp_(max=enc.shape[0] - 1)
                grads[0] = torch.zeros_like(enc).index_add_(0, index, rows)
        else:
            D = surrogate.derivative(run.Hnew - neuron.threshold)
            k_d, k_s = _value(neuron.k_d), _value(neuron.k_s)
            dh = dd = None
            dHall = torch.empty_like(dS)
            for t in range(T - 1, -1, -1):
                ds = dS[t] if ds_carry is None else dS[t] + ds_carry
                dq = ds * D[t]
                dht = dq if dh is None else dh + dq
                dHall[t].copy_(dht)
                ddt = dht * k_s if dd is None else torch.addcmul(dd, dht, k_s) if torch.is_tensor(k_s) \
                    else dd + dht * k_s
                dIg[t].copy_(ddt)
                if A is not None:
                    dHist[t].copy_(dht)
                    dh = dht * A[t] - ddt * k_d
                else:
                    dh = dht - ddt * k_d
                dd = ddt
                if W is not None and t:
                    di = ddt if Bv is None else ddt * Bv[t]
                    ds_carry = di.matmul(W)
            grads[0] = _sum_to(-(dIg * run.Hprev), neuron.k_d)
            grads[1] = _sum_to(dHall * run.D, neuron.k_s)
            if torch.is_tensor(neuron.r) and neuron.r.requires_grad:
                Sprev = torch.cat([run.S.new_zeros(1, B, C), run.S[:-1]])
                grads[2] = _sum_to(-(dIg * Sprev), neuron.r)
        dI = dIg if Bv is None else dIg * Bv
        dWt = None
        if Wt is not None and ctx.needs_input_grad[1]:
            Sprev = run.S[:-1].flatten(0, 1)
            dWt = Sprev.t().matmul(dI[1:].flatten(0, 1))
        dA = None if A is None else dHist * (run.Vprev if kind is AdaptiveThreshold else run.Hprev)
        dB = None if Bv is None else dIg * run.I
        return (dI, dWt, dA, dB, *grads, None, None)


def _coefficient_tensors(neuron):
    if isinstance(neuron, OneCompartment):
        values = (neuron.c_h, neuron.c_i, None)
    elif isinstance(neuron, AdaptiveThreshold):
        values = (neuron.encoding, None, None)
    else:
        values = (neuron.k_d, neuron.k_s, neuron.r)
    return tuple(v if torch.is_tensor(v) else None for v in values)


def run_scan(scan: DenseScan, X: torch.Tensor, recurrent_weight: torch.Tensor | None) -> torch.Tensor:
    """Spikes [T, B, C] of the layer for input currents X [T, B, C] (`recurrent_weight` [C, C] or None)."""
    T, B, C = X.shape
    Wt = None if recurrent_weight is None else recurrent_weight.t()
    circuit = None if scan.circuit is None else Circuit(scan.circuit, C)
    with torch.no_grad():
        run = _forward(scan.neuron, X.detach(), None if Wt is None else Wt.detach(), circuit)
    A = Bg = None
    if circuit is not None:
        g = torch.cat([X.new_zeros(1, B, C), run.S[:-1]]).flatten(0, 1)
        A, Bg = circuit(g)
        A = None if A is None else A.unflatten(0, (T, B))
        Bg = None if Bg is None else Bg.unflatten(0, (T, B))
    return _Scan.apply(X, Wt, A, Bg, *_coefficient_tensors(scan.neuron), run, scan.neuron)
