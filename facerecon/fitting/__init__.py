"""Fitting: analysis by synthesis — the hybrid loss minimised over x for one image or a batch.

:class:`Fitter` runs it; :class:`FitConfig` holds its settings (its docstrings are the CLI help).
"""

from facerecon.fitting.engine import FitConfig, FitResult, Fitter

__all__ = ["FitConfig", "FitResult", "Fitter"]
