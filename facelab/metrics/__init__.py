"""Evaluation metrics: landmark NME, aligned vertex error, NoW-style scan-to-mesh error.

All 3D errors are reported in millimetres (pass the model's ``units_to_mm``; ICT is in cm).
:mod:`facelab.metrics.claims` computes the verdicts of the book's "paper claim vs our
reproduction" tables from the numbers and their spread (:func:`claim_verdict`,
:func:`claims_table`).
"""

from __future__ import annotations

from . import multiview as multiview
from .claims import Verdict, claim_verdict, claims_table
from .distance import (
    brute_force_closest_points,
    closest_point_on_triangles,
    closest_points_on_mesh,
    point_triangle_distance,
)
from .landmarks import NORMALIZATIONS, landmark_nme, landmark_normalizer
from .mesh import (
    NOSE_TIP,
    NOW_LANDMARKS_IBUG,
    ScanToMeshResult,
    aligned_vertex_error,
    apply_similarity,
    rigid_icp,
    scan_to_mesh_error,
    similarity_transform,
)

__all__ = [
    "NORMALIZATIONS",
    "NOSE_TIP",
    "NOW_LANDMARKS_IBUG",
    "ScanToMeshResult",
    "Verdict",
    "aligned_vertex_error",
    "apply_similarity",
    "brute_force_closest_points",
    "claim_verdict",
    "claims_table",
    "closest_point_on_triangles",
    "closest_points_on_mesh",
    "landmark_nme",
    "landmark_normalizer",
    "point_triangle_distance",
    "rigid_icp",
    "scan_to_mesh_error",
    "similarity_transform",
]
