"""The forward model — one home for coefficients → image:

    FaceParams ─ shape ─▶ mesh (mm) ─ pose ─▶ camera space ─ normals, albedo, SH light ─▶ colours
               ─ rasterize ─▶ image, mask, depth;   projection ─▶ 68 landmarks (moving jaw contour)

Fitting, training, synthesis, export, the demo and the benchmarks all call :class:`ForwardModel`
(as DECA's single ``decode`` serves its inference, trainer and visualisation), so the chain is
written once. :func:`shade_vertices` is the shading step alone, for meshes that are not the face
model (a head scan).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from facerecon.facemodel.contour import ContourLandmarks, landmark_normals
from facerecon.facemodel.model import FaceModel
from facerecon.geometry import vertex_normals
from facerecon.params import FaceParams
from facerecon.render import Camera, Renderer, RenderOutput, euler_to_matrix, project, sh_shading, transform


def shade_vertices(verts_cam: torch.Tensor, faces: torch.Tensor, albedo: torch.Tensor, gamma: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambertian SH shading of any mesh: colours (B,V,3) = albedo (B,V,3) × irradiance at the
    camera-space vertex normals under light ``gamma`` (B,9) or (B,27). Returns (colours, normals)."""
    normals = vertex_normals(verts_cam, faces)
    return sh_shading(albedo, normals, gamma), normals


@dataclass
class ForwardOutput:
    """The face model evaluated at a batch of :class:`FaceParams` (everything (B,…))."""

    verts: torch.Tensor
    """Model-space vertices (B,V,3), mm: identity + expression, no pose (what meshes export)."""
    verts_cam: torch.Tensor
    """Camera-space vertices (B,V,3), mm: ``R(angles) verts + trans`` (the camera looks down −z)."""
    normals_cam: torch.Tensor
    """Unit vertex normals in camera space (B,V,3)."""
    albedo: torch.Tensor
    """Per-vertex albedo (B,V,3), RGB clamped to [0,1]."""
    colors: torch.Tensor
    """Shaded vertex colours (B,V,3): albedo × SH irradiance (not clamped)."""
    xy: torch.Tensor
    """Projected vertices (B,V,2), pixels of the camera's image (the 224 crop for fitting)."""
    landmarks: torch.Tensor
    """The 68 iBUG landmarks projected (B,68,2), pixels, the jaw contour on the silhouette."""
    landmark_ids: torch.Tensor
    """(B,68) the vertex each landmark is, as indices into ``ForwardModel.contour.vertex_ids``."""
    faces: torch.Tensor
    """Triangles (F,3) of the face model, vertex indices."""
    rendered: RenderOutput | None
    """Rasterizer output (image, mask, depth, triangle ids, fragments); None with ``render=False``."""

    def _need_render(self) -> RenderOutput:
        if self.rendered is None:
            raise ValueError("this forward pass was run with render=False")
        return self.rendered

    @property
    def image(self) -> torch.Tensor:
        """Rendered image (B,3,H,W) in [0,1] over the background."""
        return self._need_render().image

    @property
    def mask(self) -> torch.Tensor:
        """Face coverage (B,1,H,W), 1 where a triangle covers the pixel centre."""
        return self._need_render().mask

    @property
    def depth(self) -> torch.Tensor:
        """Depth (B,1,H,W) in mm along the optical axis, 0 on background."""
        return self._need_render().depth

    def normals(self) -> torch.Tensor:
        """Unit vertex normals in model space (B,V,3), computed on the unposed mesh (more precise
        in float32 than rotating the camera-space ones back, whose mesh sits ~1 m away)."""
        return vertex_normals(self.verts, self.faces)


class ForwardModel:
    """Evaluate a :class:`FaceModel` under a :class:`Camera`: ``ForwardModel(model)(params)``.

    ``contour=False`` keeps every landmark on its fixed vertex (e.g. for data whose landmarks are
    the model's own projected vertices), ``contour_back_mm`` and ``contour_lower_back_mm`` how far
    behind its fixed vertex a jaw point may slide (:class:`ContourLandmarks`); ``antialias`` blends
    the render across silhouette edges (:class:`~facerecon.render.Renderer`). Works on the model's
    device; batched throughout.
    """

    def __init__(self, model: FaceModel, camera: Camera | None = None, *, contour: bool = True,
                 backend: str = "auto", antialias: bool = False, contour_back_mm: float = 10.0,
                 contour_lower_back_mm: float | None = None) -> None:
        self.model = model
        self.camera = camera or Camera()
        self.renderer = Renderer(self.camera, backend=backend, antialias=antialias)
        self.contour = ContourLandmarks(model, back_mm=contour_back_mm, enabled=contour,
                                        lower_back_mm=contour_lower_back_mm)
        # the landmark/contour subset of the bases, for landmark-only evaluations (no full mesh)
        sub = self.contour.vertex_ids.to(self.device)
        v = model.n_vertices
        cols = (sub[:, None] * 3 + torch.arange(3, device=self.device)).reshape(-1)
        self._sub = sub
        self._sub_mean = model.mean[sub]
        self._sub_id = model.id_basis.reshape(-1, v * 3)[:, cols]
        self._sub_exp = model.exp_basis.reshape(-1, v * 3)[:, cols]
        self._lmk_normals: torch.Tensor | None = None  # landmark_normals, computed on first use

    @property
    def device(self) -> torch.device:
        return self.model.mean.device

    def with_camera(self, camera: Camera) -> "ForwardModel":
        """The same model (shared buffers and contour) seen through another camera."""
        other = copy.copy(self)
        other.camera = camera
        other.renderer = Renderer(camera, backend=self.renderer.backend, antialias=self.renderer.antialias)
        return other

    # --- cheap parts: the landmark subset only ------------------------------------------------
    def landmark_vertices(self, params: FaceParams) -> torch.Tensor:
        """Model-space vertices (B,S,3), mm, of the landmark/contour subset only."""
        flat = self._sub_mean.reshape(1, -1) + params.alpha @ self._sub_id + params.beta @ self._sub_exp
        return flat.reshape(params.batch, -1, 3)

    def landmarks(self, params: FaceParams, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected 68 landmarks (B,68,2) and their ids (B,68) without evaluating the whole mesh;
        the jaw contour is re-assigned unless ``ids`` are given."""
        xy, _ = project(transform(self.landmark_vertices(params), params.angles, params.trans), self.camera)
        return self.contour.pick(xy, ids)

    def landmark_facing(self, params: FaceParams) -> torch.Tensor:
        """How squarely each of the 68 landmarks faces the camera (B,68): the cosine between the
        mean face's surface normal there (:func:`landmark_normals`), turned by the pose, and the
        direction from the landmark (mean face, posed) to the camera. 1: seen head-on; 0: on the
        silhouette; below 0: turned away (hidden). Not differentiated (a weight, not a term)."""
        if self._lmk_normals is None:
            self._lmk_normals = landmark_normals(self.model)
        with torch.no_grad():
            rot = euler_to_matrix(params.angles)
            normals = self._lmk_normals.to(rot) @ rot.transpose(1, 2)  # (B,68,3)
            points = transform(self.model.mean[self.model.landmark_idx][None].to(rot), params.angles, params.trans)
            return (normals * -torch.nn.functional.normalize(points, dim=-1)).sum(-1)

    def landmarks3d(self, params: FaceParams) -> torch.Tensor:
        """The 68 fixed landmark vertices (B,68,3) in model space, mm (no pose)."""
        return self.landmark_vertices(params)[:, self.contour.landmarks]

    # --- the whole chain ------------------------------------------------------------------------
    def __call__(self, params: FaceParams, *, render: bool = True, landmark_ids: torch.Tensor | None = None,
                 background: torch.Tensor | float = 0.0) -> ForwardOutput:
        """Evaluate ``params`` (on this model's device): mesh, shading, landmarks and, with
        ``render``, the rasterized image over ``background`` (a colour or a (B,3,H,W) image)."""
        model = self.model
        verts = model.shape(params.alpha, params.beta)
        verts_cam = transform(verts, params.angles, params.trans)
        albedo = model.albedo(params.delta).clamp(0, 1)
        colors, normals_cam = shade_vertices(verts_cam, model.faces, albedo, params.gamma)
        rendered = None
        if render:
            rendered = self.renderer(verts_cam, model.faces, colors, background)
            xy = rendered.xy
        else:
            xy, _ = project(verts_cam, self.camera)
        landmarks, ids = self.contour.pick(xy[:, self._sub], landmark_ids)
        return ForwardOutput(verts=verts, verts_cam=verts_cam, normals_cam=normals_cam, albedo=albedo,
                             colors=colors, xy=xy, landmarks=landmarks, landmark_ids=ids,
                             faces=model.faces, rendered=rendered)


__all__ = ["ForwardModel", "ForwardOutput", "shade_vertices"]
