"""Building blocks: Linear -> (Dropout) -> LayerNorm -> activation MLPs, and a Q-ensemble whose heads
are stacked weight tensors evaluated with one batched matmul per layer (ONNX-exportable, no vmap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wm_control.model.fused import ln_act

__all__ = ["MLP", "NormedLinear", "QEnsemble", "init_linear_"]


def init_linear_(weight: Tensor, bias: Tensor | None) -> None:
    """TD-MPC2 initialisation: truncated normal (std 0.02) weights, zero bias."""
    nn.init.trunc_normal_(weight, std=0.02)
    if bias is not None:
        nn.init.zeros_(bias)


class NormedLinear(nn.Module):
    """``act(LayerNorm(Linear(x)))`` with ``act`` Mish or SimNorm."""

    def __init__(self, in_dim: int, out_dim: int, act: str = "mish", simnorm_dim: int = 8):
        super().__init__()
        if act not in ("mish", "simnorm"):
            raise ValueError(f"act={act!r}; valid: 'mish', 'simnorm'")
        self.linear = nn.Linear(in_dim, out_dim)
        self.ln = nn.LayerNorm(out_dim)
        self.act = act
        self.simnorm_dim = simnorm_dim
        init_linear_(self.linear.weight, self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        x = torch.matmul(x, self.linear.weight.t())  # bias folded into ln_act (no broadcast copy)
        return ln_act(x, self.ln.weight, self.ln.bias, self.act, self.simnorm_dim, pre_bias=self.linear.bias)


_Step = tuple[Tensor, Tensor, Tensor | None, Tensor | None, str, int]


class MLP(nn.Module):
    """TD-MPC2 MLP: hidden ``NormedLinear`` (Mish) layers, then either a plain Linear output or a
    ``NormedLinear`` output with SimNorm (``simnorm_out=True``).

    Without autograd (planning, TD targets) the forward pass walks a flat list of the layers' tensors
    instead of calling sub-modules: the planner evaluates these MLPs dozens of times per solve and
    module dispatch would otherwise be a visible share of its time.
    """

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, simnorm_out: bool = False, simnorm_dim: int = 8):
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = [NormedLinear(dims[i], dims[i + 1]) for i in range(len(hidden))]
        if simnorm_out:
            layers.append(NormedLinear(dims[-1], out_dim, act="simnorm", simnorm_dim=simnorm_dim))
        else:
            out = nn.Linear(dims[-1], out_dim)
            init_linear_(out.weight, out.bias)
            layers.append(out)
        self.layers = nn.Sequential(*layers)
        self._steps: list[_Step] | None = None

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if torch.is_grad_enabled():
            return self.layers(x)
        return self._run(x, self._flat())

    def hidden(self, x: Tensor) -> Tensor:
        """The activations that enter the output layer (all layers but the last)."""
        if torch.is_grad_enabled():
            return self.layers[:-1](x)
        return self._run(x, self._flat()[:-1])

    @staticmethod
    def _run(x: Tensor, steps: list[_Step]) -> Tensor:
        for w, b, g, be, act, group in steps:
            if g is None:
                x = F.linear(x, w, b)
            else:
                assert be is not None
                x = ln_act(torch.matmul(x, w.t()), g, be, act, group, pre_bias=b)
        return x

    def _flat(self) -> list[_Step]:
        # The layers' parameter tensors in order. Optimiser steps and load_state_dict update them in
        # place, so the list stays valid; _apply (.to(), .double(), ...) rebuilds it.
        if self._steps is None:
            steps: list[_Step] = []
            for layer in self.layers:
                if isinstance(layer, NormedLinear):
                    lin, ln = layer.linear, layer.ln
                    steps.append((lin.weight, lin.bias, ln.weight, ln.bias, layer.act, layer.simnorm_dim))
                else:
                    assert isinstance(layer, nn.Linear)
                    steps.append((layer.weight, layer.bias, None, None, "none", 0))
            self._steps = steps
        return self._steps

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]  # noqa: ANN001, D102
        self._steps = None
        return super()._apply(fn, recurse)

    def zero_output_(self) -> None:
        """Zero the output layer (TD-MPC2 does this for reward and Q heads)."""
        last = self.layers[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)


class QEnsemble(nn.Module):
    """``num_q`` Q heads, each ``in -> mlp -> mlp -> num_bins`` (LayerNorm + Mish, dropout after the
    first layer, zero-initialised output), stored as stacked tensors.

    The first layer is one GEMM for all heads (they share the input; ``w0`` is stored
    ``(in, num_q, hidden)`` so it is a plain matrix); later layers are batched matmuls over the head
    axis. ``forward`` returns logits ``(H_sel, N..., num_bins)``.
    """

    def __init__(self, in_dim: int, hidden: int, num_bins: int, num_q: int, dropout: float = 0.0):
        super().__init__()
        self.num_q, self.in_dim, self.hidden, self.num_bins, self.dropout = num_q, in_dim, hidden, num_bins, dropout
        self.w0 = nn.Parameter(torch.empty(in_dim, num_q, hidden))
        self.b0 = nn.Parameter(torch.zeros(num_q, hidden))
        self.g0 = nn.Parameter(torch.ones(num_q, hidden))
        self.be0 = nn.Parameter(torch.zeros(num_q, hidden))
        self.w1 = nn.Parameter(torch.empty(num_q, hidden, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_q, hidden))
        self.g1 = nn.Parameter(torch.ones(num_q, hidden))
        self.be1 = nn.Parameter(torch.zeros(num_q, hidden))
        self.w2 = nn.Parameter(torch.zeros(num_q, hidden, num_bins))
        self.b2 = nn.Parameter(torch.zeros(num_q, num_bins))
        nn.init.trunc_normal_(self.w0, std=0.02)
        nn.init.trunc_normal_(self.w1, std=0.02)

    def params(self, detach: bool = False) -> list[Tensor]:
        """The ten parameter tensors in forward order (detached copies' views if ``detach``)."""
        ps = [self.w0, self.b0, self.g0, self.be0, self.w1, self.b1, self.g1, self.be1, self.w2, self.b2]
        return [p.detach() for p in ps] if detach else list(ps)

    def forward(
        self, x: Tensor, heads: Tensor | None = None, detach: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Q logits for inputs ``x`` ``(..., in_dim)``.

        Args:
            heads: optional ``(h,)`` long tensor: the set of heads to evaluate (default all). When it
                names every head the output is in head order, whatever the order in ``heads``.
            detach: use the parameters without gradient (for the policy update).
            generator: source of the dropout mask in training mode.

        Returns:
            ``(h, ..., num_bins)`` logits.
        """
        y, w2, b2 = self.features(x, heads, detach, generator)
        return torch.baddbmm(b2[:, None], y, w2).reshape(y.shape[0], *x.shape[:-1], self.num_bins)

    def features(
        self, x: Tensor, heads: Tensor | None = None, detach: bool = False, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Activations entering the output layer ``(h, N, hidden)`` (inputs flattened to ``N`` rows),
        and that layer's weight ``(h, hidden, num_bins)`` and bias ``(h, num_bins)``. In training mode
        the dropout mask is drawn from ``generator`` (the global RNG if None).
        """
        w0, b0, g0, be0, w1, b1, g1, be1, w2, b2 = self.params(detach)
        if heads is not None and heads.numel() < self.num_q:  # a subset: gather those heads' weights
            w0 = w0.index_select(1, heads)
            b0, g0, be0, w1, b1, g1, be1, w2, b2 = (
                p.index_select(0, heads) for p in (b0, g0, be0, w1, b1, g1, be1, w2, b2)
            )
        q, hid = w0.shape[1], self.hidden
        x2 = x.reshape(-1, self.in_dim)
        n = x2.shape[0]
        # One GEMM for all heads: (N, in) @ (in, q*hid), output rows interleaved (sample, head).
        y = (x2 @ w0.reshape(self.in_dim, q * hid)).reshape(n, q, hid)
        if self.dropout and self.training:
            keep = torch.rand(y.shape, generator=generator, device=y.device) >= self.dropout
            y = ln_act((y + b0) * keep / (1.0 - self.dropout), g0, be0, "mish", rows_per_affine=1)
        else:
            y = ln_act(y, g0, be0, "mish", rows_per_affine=1, pre_bias=b0)
        y = ln_act(torch.matmul(y.transpose(0, 1), w1), g1, be1, "mish", rows_per_affine=n, pre_bias=b1)
        return y, w2, b2
