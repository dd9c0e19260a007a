"""facerecon: 3D faces from one or many photos.

Data flows one way, bottom to top: ``atomic``, ``geometry``, ``assets`` and ``config`` at the
bottom; ``render`` (camera, shading, rasterizer), ``params`` and ``facemodel`` (coefficients ->
vertices, albedo, jaw contour); ``forward`` (the one chain FaceParams -> mesh, shading, image,
landmarks); ``imageio`` (photos -> aligned crops, landmarks, skin attention) and ``nets``
(FaceNet); ``losses`` (the hybrid loss over a forward pass); ``fitting`` (analysis by synthesis
in stages, photos grouped into people) and ``synthesis`` (faces with known parameters);
``evaluation`` (accuracy against ground truth); ``export`` (meshes, textures, JSON); ``pipeline``
is the library API and ``cli`` only wires these together. R-Net training and multi-image
aggregation will sit beside fitting, on the same forward model and loss.
"""

import os as _os

# OpenMP threads that spin while waiting for work steal the cores from each other as soon as
# anything else runs (numba, a second process, a browser): measured on 2 cores, a fitting step
# took 20x longer with the default active wait. Passive waiting costs little when the machine is
# idle. This only takes effect if facerecon is imported before torch; set the variable yourself
# to choose otherwise.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
