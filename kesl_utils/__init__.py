"""kesl_utils: knowledge-embedded soft labels (Yuan et al., ICPR 2020) for PyTorch training.

Data flows one way: :mod:`~kesl_utils.hierarchy` → :mod:`~kesl_utils.soft_labels` →
:mod:`~kesl_utils.losses` → :mod:`~kesl_utils.train` → run record → :mod:`~kesl_utils.tables`.
"""

__version__ = "0.1.0"
