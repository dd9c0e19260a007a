"""Evaluation: the instruments that steer the method — scan error in mm (MICC protocol), 68-point
landmark NME, and synthetic ground truth (``facerecon synth``, rendered real-scan photos)."""
