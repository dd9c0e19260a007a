"""Synthetic faces with known parameters — Generate&Render training and test data.

:mod:`~facerecon.synthesis.sampling` draws random :class:`~facerecon.params.FaceParams` (one
random stream per sample), :mod:`~facerecon.synthesis.generate` renders them through the forward
model over :mod:`~facerecon.synthesis.backgrounds` (real-photo crops), and
:mod:`~facerecon.synthesis.records` writes them (PNG, JSON ground truth, ``.pts``, PLY). The CLI
is ``facerecon synth``; evaluation (:mod:`facerecon.evaluation`) and training use the same data.
"""

from facerecon.synthesis.generate import generate, generate_batches, landmark_visibility, render_over
from facerecon.synthesis.records import params_from_record, sample_record, save_sample
from facerecon.synthesis.sampling import SynthConfig, config_record

__all__ = ["SynthConfig", "config_record", "generate", "generate_batches", "landmark_visibility", "render_over",
           "params_from_record", "sample_record", "save_sample"]
