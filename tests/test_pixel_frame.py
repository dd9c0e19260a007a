"""One pixel frame from photo to crop: the fitter's crop render must be the photo-resolution render
(the exports') taken into the crop the way the aligner takes photos (OpenCV resampling), so that
the photometric term and the detected landmarks (dlib, OpenCV convention) see the face in the
same place. Half a pixel apart was what mixing the rasterizer's and OpenCV's pixel centres gave."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facerecon.export.photo import project_to_photo, rasterize_photo
from facerecon.forward import ForwardModel
from facerecon.imageio.align import invert_affine
from facerecon.params import FaceParams


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[0:mask.shape[0], 0:mask.shape[1]].astype(np.float64)
    return np.array([(mask * cols).sum(), (mask * rows).sum()]) / mask.sum()


def test_the_crop_render_is_the_photo_render_resized_into_the_crop(face_model):
    fw = ForwardModel(face_model, antialias=True)
    p = FaceParams.zeros(1)
    p.angles = torch.tensor([[0.1, 0.3, -0.05]])
    p.trans = torch.tensor([[6.0, -4.0, -1000.0]])
    with torch.no_grad():
        out = fw(p)
    crop = out.mask[0, 0].double().numpy()
    k = 2.5  # the photo has 2.5× the crop's pixels; cv2.resize takes photo x to (x + ½)/k − ½
    size = fw.camera.size
    M = np.array([[1 / k, 0.0, 0.5 / k - 0.5], [0.0, 1 / k, 0.5 / k - 0.5]])
    xy, depth = project_to_photo(out.verts_cam, fw.camera, invert_affine(M))
    ras = rasterize_photo(xy[0], depth[0], out.faces, int(size * k), int(size * k))
    photo = np.zeros((int(size * k), int(size * k)), np.float32)
    h, w = ras.shape
    photo[ras.y0:ras.y0 + h, ras.x0:ras.x0 + w] = (ras.tri_id >= 0).numpy()
    resized = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert abs(resized.sum() - crop.sum()) < 0.002 * crop.sum()  # the same face, the same size
    np.testing.assert_allclose(_centroid(resized), _centroid(crop), atol=0.05)  # and the same place
