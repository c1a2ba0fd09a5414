"""kesl_utils: knowledge-embedded soft labels (Yuan et al., ICPR 2020) for PyTorch training.

Data flows one way: :mod:`~kesl_utils.hierarchy` → :mod:`~kesl_utils.soft_labels` →
:mod:`~kesl_utils.losses` → :mod:`~kesl_utils.train` → run record → :mod:`~kesl_utils.tables`.

What a run *is* comes from torch-free registries (:mod:`~kesl_utils.names`: backbones and datasets;
:mod:`~kesl_utils.profiles`; :mod:`~kesl_utils.loss_registry`) read by :mod:`~kesl_utils.config`; *where and how*
it runs is a :class:`~kesl_utils.context.RunContext` that the entry points build and pass down.
"""

__version__ = "0.1.0"
