"""Training losses: cross-entropy, label smoothing and the KESL loss (Yuan et al., ICPR 2020, Eq. 3–5).

The KESL loss of a sample x_i with label y_i and network output y'_i = softmax(s_i) is

    L = α · L_CE + β · L_KL,
    L_CE = −Σ_k y_ik log y'_ik,
    L_KL = Σ_k y'_ik (log y'_ik − log g_{y_i}k)      (kl="reverse", the paper's KL(y' ‖ g))
      or   Σ_k g_{y_i}k (log g_{y_i}k − log y'_ik)   (kl="forward", KL(g ‖ y')),

where g_{y_i} is row y_i of the soft-label matrix (:func:`kesl_utils.soft_labels.soft_label_matrix`).
The paper writes L_KL = −Σ_k g'_ik log(g_ik / g'_ik) without defining g'; we read g' as the network's
output y', which makes the paper's formula the reverse KL. Both terms are summed over classes per
sample and then averaged over the batch ("batchmean").
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KESLLoss", "build_loss", "LOSS_NAMES", "KL_DIRECTIONS"]

LOSS_NAMES = ("ce", "label_smoothing", "kesl")
KL_DIRECTIONS = ("reverse", "forward")

# Tolerance on Σ_j g_ij = 1: loose enough for a float32 matrix of 10,000 classes.
_ROW_SUM_TOL = 1e-4


def _check_weight(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number ≥ 0, got {value!r}")
    value = float(value)
    if not (value >= 0.0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite real number ≥ 0, got {value}")
    return value


def _check_soft_labels(soft_labels) -> torch.Tensor:
    g = torch.as_tensor(soft_labels).detach()
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] == 0:
        raise ValueError(f"soft_labels must be a non-empty square (n, n) matrix, got shape {tuple(g.shape)}")
    # float64 stays float64 (exact references, gradcheck); anything else is held in float32.
    g = g.to(torch.float64 if g.dtype == torch.float64 else torch.float32)
    if not torch.isfinite(g).all() or (g < 0).any():
        raise ValueError("soft_labels must hold finite, non-negative probabilities g_ij")
    row_sums = g.double().sum(dim=1)
    worst = int((row_sums - 1).abs().argmax())
    if abs(float(row_sums[worst]) - 1.0) > _ROW_SUM_TOL:
        raise ValueError(f"soft_labels rows must sum to 1 (within {_ROW_SUM_TOL:g}); "
                         f"row {worst} sums to {float(row_sums[worst]):.6g}")
    return g


class KESLLoss(nn.Module):
    """α · L_CE + β · L_KL with knowledge-embedded soft labels g (paper, Eq. 5).

    Parameters
    ----------
    soft_labels : (n, n) tensor or array
        The soft-label matrix g; row i is the target distribution of class i and must sum to 1.
        Kept as the buffer ``soft_labels`` (float32, or float64 if given in float64), with
        ``log_soft_labels`` = log max(g, tiny) beside it, so both follow ``.to(device)`` and are
        saved in ``state_dict()``.
    alpha, beta : float
        α ≥ 0 and β ≥ 0 weigh the hard-label cross-entropy and the KL term; not both zero.
    kl : {"reverse", "forward"}
        "reverse" is the paper's KL(y' ‖ g_y); "forward" is KL(g_y ‖ y').

    ``forward(logits, targets)`` takes logits s of shape (N, n) (any float dtype; computed in
    float32, or float64 for float64 logits, also under autocast) and integer targets of shape (N,)
    in [0, n), and returns the batch mean of the per-sample loss as a 0-dim tensor.
    """

    def __init__(self, soft_labels, alpha: float = 1.0, beta: float = 1.0, kl: str = "reverse"):
        super().__init__()
        self.alpha = _check_weight("alpha (α)", alpha)
        self.beta = _check_weight("beta (β)", beta)
        if self.alpha == 0.0 and self.beta == 0.0:
            raise ValueError("alpha (α) and beta (β) must not both be zero (the loss would be constant)")
        if kl not in KL_DIRECTIONS:
            raise ValueError(f"kl must be one of {', '.join(map(repr, KL_DIRECTIONS))}, got {kl!r}")
        self.kl = kl
        g = _check_soft_labels(soft_labels)
        self.register_buffer("soft_labels", g)
        # The clamp keeps log g finite where T is so large that g underflowed to 0: the reverse KL
        # then gives a large finite penalty, and the forward KL's 0 · log 0 terms stay 0.
        self.register_buffer("log_soft_labels", g.clamp_min(torch.finfo(g.dtype).tiny).log())

    @property
    def num_classes(self) -> int:
        return self.soft_labels.shape[0]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha:g}, beta={self.beta:g}, kl={self.kl!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = self.num_classes
        if logits.ndim != 2 or logits.shape[1] != n:
            raise ValueError(f"logits must have shape (N, {n}) (one column per class of soft_labels), "
                             f"got {tuple(logits.shape)}")
        if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
            raise ValueError(f"targets must have shape ({logits.shape[0]},) to match logits, got {tuple(targets.shape)}")
        if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
            raise ValueError(f"targets must be integer class indices in [0, {n - 1}], got dtype {targets.dtype}")
        if targets.numel() and bool(((targets < 0) | (targets >= n)).any()):
            raise ValueError(f"targets must lie in [0, {n - 1}], got values in "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        targets = targets.long()
        compute_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        # Autocast would run log_softmax/exp in bf16/fp16 on some backends; the loss is cheap,
        # so it is always computed in (at least) float32.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            log_p = F.log_softmax(logits.to(compute_dtype), dim=1)
            loss = log_p.new_zeros(logits.shape[0])
            if self.alpha:
                loss = loss - self.alpha * log_p.gather(1, targets.unsqueeze(1)).squeeze(1)
            if self.beta:
                log_g = self.log_soft_labels[targets].to(compute_dtype)
                if self.kl == "reverse":
                    kl = (log_p.exp() * (log_p - log_g)).sum(dim=1)
                else:
                    g = self.soft_labels[targets].to(compute_dtype)
                    kl = (g * (log_g - log_p)).sum(dim=1)
                loss = loss + self.beta * kl
            return loss.mean()


def build_loss(name: str, *, soft_labels=None, alpha: float = 1.0, beta: float = 1.0,
               kl: str = "reverse", epsilon: float = 0.1) -> nn.Module:
    """The training loss called ``name``, as an ``nn.Module`` mapping (logits (N, n), targets (N,)) → scalar.

    * ``"ce"``: ``nn.CrossEntropyLoss()``; the other arguments are ignored.
    * ``"label_smoothing"``: ``nn.CrossEntropyLoss(label_smoothing=epsilon)`` (PyTorch's own), ε in [0, 1].
    * ``"kesl"``: :class:`KESLLoss` ``(soft_labels, alpha, beta, kl)``; ``soft_labels`` is required.
    """
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "label_smoothing":
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"epsilon (label smoothing ε) must be a real number in [0, 1], got {epsilon!r}")
        return nn.CrossEntropyLoss(label_smoothing=float(epsilon))
    if name == "kesl":
        if soft_labels is None:
            raise ValueError("soft_labels is required for the 'kesl' loss "
                             "(an (n, n) matrix from kesl_utils.soft_labels.soft_label_matrix)")
        return KESLLoss(soft_labels, alpha=alpha, beta=beta, kl=kl)
    raise ValueError(f"unknown loss name {name!r}; allowed: {', '.join(map(repr, LOSS_NAMES))}")
