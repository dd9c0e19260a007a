"""facerecon: 3D faces from one or many photos.

Data flows one way through the sub-packages:
``imageio`` (photos -> aligned crops, landmarks, skin attention) ->
``facemodel`` (coefficients -> vertices, albedo) -> ``render`` (vertices -> images) ->
``losses`` -> ``fitting`` (analysis by synthesis) -> ``export`` (meshes, textures, JSON), with
``nets`` (FaceNet for the perceptual loss) and ``evaluation`` (accuracy against ground truth)
beside them; ``pipeline`` is the library API and ``cli`` only wires these together.
R-Net training and multi-image aggregation will sit between fitting and export.
"""

import os as _os

# OpenMP threads that spin while waiting for work steal the cores from each other as soon as
# anything else runs (numba, a second process, a browser): measured on 2 cores, a fitting step
# took 20x longer with the default active wait. Passive waiting costs little when the machine is
# idle. This only takes effect if facerecon is imported before torch; set the variable yourself
# to choose otherwise.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
