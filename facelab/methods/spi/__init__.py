"""3D GAN inversion with a facial symmetry prior (Yin et al., CVPR 2023) on facelab's tri-plane GAN.

- :mod:`~facelab.methods.spi.camera`: a photo's EG3D camera, the mirrored camera, the yaw weight;
- :mod:`~facelab.methods.spi.warp`: depth-guided warping (pseudo labels for novel views);
- :mod:`~facelab.methods.spi.masks`: conflict masks (occlusion, bounds, face region, symmetry);
- :mod:`~facelab.methods.spi.losses`: the named loss terms and two perceptual distances;
- :mod:`~facelab.methods.spi.invert`: latent inversion (W / W+), pivotal tuning, :func:`invert3d`;
- :mod:`~facelab.methods.spi.evaluate`: world faces with true novel views, the metrics.
"""

from __future__ import annotations

from .camera import (
    PhotoCamera,
    camera_yaw_pitch,
    eg3d_camera_from_pose,
    estimate_camera,
    mirror_camera_params,
    mirror_weight,
)
from .invert import (
    SPIConfig,
    SPIResult,
    extract_mesh_ws,
    invert3d,
    invert_latent,
    mean_latent,
    pivotal_tuning,
    render_views,
    warp_labels,
)
from .losses import DlibFeatureDistance, LPIPSDistance
from .masks import in_bounds_mask, landmark_face_mask, occlusion_mask, symmetry_conflict_mask
from .warp import depth_warp, unproject_depth

__all__ = [
    "DlibFeatureDistance",
    "LPIPSDistance",
    "PhotoCamera",
    "SPIConfig",
    "SPIResult",
    "camera_yaw_pitch",
    "depth_warp",
    "eg3d_camera_from_pose",
    "estimate_camera",
    "extract_mesh_ws",
    "in_bounds_mask",
    "invert3d",
    "invert_latent",
    "landmark_face_mask",
    "mean_latent",
    "mirror_camera_params",
    "mirror_weight",
    "occlusion_mask",
    "pivotal_tuning",
    "render_views",
    "symmetry_conflict_mask",
    "unproject_depth",
    "warp_labels",
]
