"""The loss registry: every loss's name, parameters, defaults and validators, without torch.

A :class:`~kesl_utils.config.Config` validates its ``loss`` and ``loss_params`` here, and the
command line makes its flags from here, so neither imports torch. Each :class:`LossSpec` also
names its builder ``build(hierarchy, **params) -> nn.Module``: the built-in losses by an import
string into :mod:`kesl_utils.losses` (resolved when the trainer builds the loss), a loss of your
own by the function itself. :mod:`kesl_utils.losses` re-exports :func:`register_loss` and
:class:`LossParam`, so the documented way to add a loss is unchanged::

    from kesl_utils.losses import LossParam, register_loss

    @register_loss("my_loss", params=(LossParam("gamma", 2.0, names.check_temperature, "focusing γ"),),
                   summary="my loss")
    def _build_my_loss(hierarchy, *, gamma):
        return MyLoss(gamma)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from . import names

__all__ = ["LossParam", "LossSpec", "LOSSES", "register_loss", "loss_spec", "owners", "check_loss_params",
           "KL_DIRECTIONS", "KESL_DISTANCES", "BUILT_IN"]

KL_DIRECTIONS = names.KL_DIRECTIONS
#: Which class distance KESL's c_ij = λ^D_ij uses: the paper's d_ij = e_ij − 1 ("edges") or the
#: height of the lowest common ancestor ("lca", the distance of Bertinetto et al.).
KESL_DISTANCES = ("edges", "lca")


@dataclass(frozen=True)
class LossParam:
    """One parameter of a loss: a field of ``Config.loss_params`` and a command-line flag.

    name: the key (``"lam"``; the flag is ``--lam``). default: its value when not given.
    check: validator returning the normalised value or raising ``ValueError`` (from :mod:`names`).
    help: one line for ``--help``. choices: the allowed strings of a text parameter.
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    help: str
    choices: Optional[tuple] = None

    @property
    def type(self) -> type:
        """``float`` or ``str``: how the command line parses the flag."""
        return str if isinstance(self.default, str) else float


@dataclass(frozen=True)
class LossSpec:
    """A registered loss.

    build: ``build(hierarchy, **params) -> nn.Module``, the function or an import string
        (``"kesl_utils.losses:_build_kesl"``) resolved by :meth:`builder`.
    ``check_all(params)`` (optional) validates rules that involve several parameters
    (KESL: α and β not both zero); it runs when a ``Config`` is made, before any training.
    ``needs_hierarchy``: whether ``build`` reads the hierarchy (cross-entropy does not).
    """

    name: str
    params: tuple[LossParam, ...]
    build: Callable[..., Any] | str
    summary: str
    check_all: Optional[Callable[[dict], None]] = None
    needs_hierarchy: bool = True

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def builder(self) -> Callable[..., Any]:
        """The build function (imported now if ``build`` is an import string)."""
        return names.resolve(self.build, f"the builder of loss {self.name!r}")


#: name → :class:`LossSpec`, filled by :func:`register_loss`.
LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, *, params: tuple = (), summary: str = "", check_all=None,
                  needs_hierarchy: bool = True, build: Callable[..., Any] | str | None = None):
    """Register ``build(hierarchy, **params) -> nn.Module`` as loss ``name``.

    Used as a decorator (``@register_loss("my_loss", params=...)`` above the build function), or
    with ``build=`` (a function or an import string) to register at once; the decorator form
    returns the function, the other the :class:`LossSpec`.

    A parameter name used by several losses must mean the same there (same default type).
    Registering a name twice replaces the earlier entry (so a notebook cell can be re-run).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"loss name must be an identifier such as 'my_loss', got {name!r}")
    params = tuple(params)
    for param in params:
        if not isinstance(param, LossParam):
            raise TypeError(f"loss {name!r}: params must be LossParam objects, got {type(param).__name__}")
        for other in LOSSES.values():
            for known in other.params:
                if known.name == param.name and known.type is not param.type:
                    raise ValueError(f"loss {name!r}: parameter {param.name!r} is a {param.type.__name__} "
                                     f"but loss {other.name!r} declares it as a {known.type.__name__}")

    def add(function):
        doc = function.__doc__ if callable(function) else None
        text = summary or (doc or "").strip().split("\n")[0]
        spec = LossSpec(name, params, function, text, check_all, needs_hierarchy)
        LOSSES[name] = spec
        return spec

    if build is not None:
        return add(build)

    def decorator(function):
        add(function)
        return function

    return decorator


def loss_spec(name: str) -> LossSpec:
    """The registered loss ``name``; ``ValueError`` listing the registered losses otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {names.quoted(LOSSES)}")
    return LOSSES[name]


def owners(param: str) -> list[str]:
    """The losses that declare parameter ``param``."""
    return [spec.name for spec in LOSSES.values() if any(p.name == param for p in spec.params)]


def check_loss_params(name: str, params: Optional[Mapping] = None) -> dict:
    """``params`` of loss ``name`` validated and completed with defaults, in declaration order.

    A parameter the loss does not declare is an error that names the loss(es) it belongs to, so
    that ``--lam`` given with ``--loss ce`` fails instead of being silently dropped.
    """
    spec = loss_spec(name)
    params = dict(params or {})
    declared = {p.name for p in spec.params}
    unknown = [k for k in params if k not in declared]
    if unknown:
        problems = []
        for key in unknown:
            belongs = owners(key)
            problems.append(f"{key!r} is a parameter of {' and '.join(map(repr, belongs))}" if belongs
                            else f"{key!r} is not a parameter of any registered loss")
        raise ValueError(f"loss {name!r} takes {names.quoted(declared) or 'no parameters'}; "
                         + "; ".join(problems))
    checked = {}
    for param in spec.params:
        value = params.get(param.name, param.default)
        if value is None:
            value = param.default
        checked[param.name] = param.check(value)
    if spec.check_all is not None:
        spec.check_all(checked)
    return checked


# -- validators shared by the declarations and the loss classes ----------------------------------
def check_not_both_zero(params: dict) -> None:
    """KESL's α and β: not both zero (the loss would be constant)."""
    if params["alpha"] == 0.0 and params["beta"] == 0.0:
        raise ValueError("alpha (α) and beta (β) must not both be zero (the loss would be constant)")


def check_hardness(value) -> float:
    """MBM's hardness β > 0."""
    return names.check_positive(value, "hardness")


def check_decay(value) -> float:
    """HXE's decay α ≥ 0."""
    return names.check_positive(value, "decay", allow_zero=True)


# -- the built-in losses (builders in kesl_utils.losses) -----------------------------------------
register_loss("ce", summary="cross-entropy with the one-hot label", needs_hierarchy=False,
              build="kesl_utils.losses:_build_ce")
register_loss("label_smoothing", summary="label smoothing (Szegedy et al. 2016), PyTorch's own",
              params=(LossParam("epsilon", 0.1, names.check_epsilon,
                                "label smoothing: mass spread uniformly over all classes (ε)"),),
              needs_hierarchy=False, build="kesl_utils.losses:_build_label_smoothing")
register_loss("kesl", summary="KESL: alpha*CE + beta*KL to the knowledge-embedded soft label",
              params=(LossParam("lam", 0.5, names.check_lambda, "KESL λ: similarity c_ij = λ^d_ij, 0 < λ < 1"),
                      LossParam("T", 2.0, names.check_temperature, "KESL temperature: g_ij = softmax_j(T c_ij)"),
                      LossParam("alpha", 1.0, lambda v: names.check_weight(v, "alpha (α)"),
                                "KESL weight α of the cross-entropy term"),
                      LossParam("beta", 0.1, lambda v: names.check_weight(v, "beta (β)"),
                                "KESL weight β of the KL term"),
                      LossParam("kl", "reverse", lambda v: names.check_choice("kl", v, KL_DIRECTIONS),
                                "KL direction: reverse KL(p||g) (the paper's) or forward KL(g||p)",
                                choices=KL_DIRECTIONS),
                      LossParam("distance", "edges", lambda v: names.check_choice("distance", v, KESL_DISTANCES),
                                "class distance of c_ij: the paper's d_ij = e_ij - 1, or the LCA height",
                                choices=KESL_DISTANCES)),
              check_all=check_not_both_zero, build="kesl_utils.losses:_build_kesl")
register_loss("mbm", summary="soft labels of Bertinetto et al. 2020: CE to softmax(-hardness * LCA height / max)",
              params=(LossParam("hardness", 30.0, check_hardness,
                                "MBM soft labels: hardness β > 0 of softmax(-β h_ij / max h), larger is closer "
                                "to one-hot"),),
              build="kesl_utils.losses:_build_mbm")
register_loss("hxe", summary="hierarchical cross-entropy of Bertinetto et al. 2020 (edge weights exp(-decay*depth))",
              params=(LossParam("decay", 0.1, check_decay,
                                "HXE: decay α ≥ 0 of the edge weights exp(-α·depth); 0 is cross-entropy"),),
              build="kesl_utils.losses:_build_hxe")

#: The losses this package declares; any other was registered by user code.
BUILT_IN = tuple(LOSSES)
