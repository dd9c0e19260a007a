"""facerecon: 3D faces from one or many photos.

Data flows one way through the sub-packages:
``imageio`` (photos -> aligned crops, landmarks, skin attention) ->
``facemodel`` (coefficients -> vertices, albedo) -> ``render`` (vertices -> images) ->
``losses`` / ``fitting`` / ``training`` -> ``multi`` (many photos -> one face) ->
``export`` (meshes, textures, JSON) and ``evaluation`` (accuracy against ground truth).
``cli`` only wires these together.
"""

__version__ = "0.1.0"
