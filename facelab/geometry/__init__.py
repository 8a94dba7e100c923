"""Geometry: rotations, meshes and mesh files, point-set alignment, and the coordinate conventions.

Submodules: :mod:`~facelab.geometry.rotation`, :mod:`~facelab.geometry.mesh`,
:mod:`~facelab.geometry.io`, :mod:`~facelab.geometry.alignment`,
:mod:`~facelab.geometry.conventions` (and ``camera``, the projection model; ``raster``, which
pixel centres a 2D triangle covers — the fill rule of the rasterizer).
"""

from __future__ import annotations

from . import camera as camera
from . import eg3d as eg3d
from . import raster as raster
from .alignment import SimilarityTransform, align_points, apply_similarity, procrustes, umeyama
from .conventions import FLIP_YZ, flip_yz
from .io import (
    load_mesh,
    load_obj,
    load_obj_vertices,
    load_ply,
    save_glb,
    save_mesh,
    save_obj,
    save_ply,
)
from .mesh import (
    Mesh,
    face_areas,
    face_normals,
    icosphere,
    normalize_vectors,
    quads_to_triangles,
    remove_unreferenced,
    submesh,
    submesh_faces,
    triangulate_polygons,
    unweld_uv_seams,
    vertex_normals,
)
from .rotation import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_angles_to_matrix,
    geodesic_distance,
    hat,
    matrix_to_axis_angle,
    matrix_to_euler_angles,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    matrix_to_yaw_pitch_roll,
    quaternion_multiply,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    random_rotations,
    rotation_6d_to_matrix,
    yaw_pitch_roll_to_matrix,
)

__all__ = [
    "FLIP_YZ",
    "Mesh",
    "SimilarityTransform",
    "align_points",
    "apply_similarity",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "euler_angles_to_matrix",
    "face_areas",
    "face_normals",
    "flip_yz",
    "geodesic_distance",
    "hat",
    "icosphere",
    "load_mesh",
    "load_obj",
    "load_obj_vertices",
    "load_ply",
    "matrix_to_axis_angle",
    "matrix_to_euler_angles",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "matrix_to_yaw_pitch_roll",
    "normalize_vectors",
    "procrustes",
    "quads_to_triangles",
    "quaternion_multiply",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "random_rotations",
    "remove_unreferenced",
    "rotation_6d_to_matrix",
    "save_glb",
    "save_mesh",
    "save_obj",
    "save_ply",
    "submesh",
    "submesh_faces",
    "triangulate_polygons",
    "umeyama",
    "unweld_uv_seams",
    "vertex_normals",
    "yaw_pitch_roll_to_matrix",
]
