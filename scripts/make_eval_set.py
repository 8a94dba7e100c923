"""Make the independent-renderer evaluation set (Blender Cycles) for ``benchmarks/fit.py``.

The fitter renders with a Lambert + spherical-harmonics rasterizer and the synthetic world
(:mod:`facelab.world`) shares most of its image formation. This set does not: Blender's Cycles
path tracer, a Principled BSDF with subsurface scattering, procedural skin-tone variation and
bump, two area lights and a coloured environment, no denoiser (path-tracing noise), JPEG.
The faces are ICT-FaceKit samples (the full mesh with eyeballs, teeth and mouth interior is
rendered; the ground truth is the ``ict-face`` part), so the ground-truth mesh is exact.

Two halves, never mixed: ``tuning`` (even sample numbers) may be used to choose the fitter's
settings; ``report`` (odd numbers) is only reported.

Usage (needs Debian's ``blender`` package on PATH; facelab itself never needs Blender)::

    apt-get install -y blender
    python scripts/make_eval_set.py --out benchmarks/data/blender_eval --n 48

The script runs in two roles: with facelab's Python it samples the scenes, calls
``blender -b --python scripts/make_eval_set.py -- --scene S.json --image O.png`` once per
face (Blender's own Python has bpy but no numpy or torch: the scene goes over as JSON) and
writes ``gt.npz`` (parameters + exact landmarks) and ``images/NNN.jpg``.
"""

from __future__ import annotations

import json
import math
import sys

#: yaw bins (degrees) of the set: one third of the faces in each
YAW_BINS = ((0.0, 20.0), (20.0, 45.0), (45.0, 62.0))
#: expression kinds cycled through: neutral, jaw open, smile
KINDS = ("neutral", "jaw_open", "smile")


# --------------------------------------------------------------------------------------------
# Role 1: inside Blender (bpy, no numpy)
# --------------------------------------------------------------------------------------------
def blender_render(scene_path: str, image_path: str) -> None:
    import bpy

    with open(scene_path) as f:
        sc = json.load(f)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(sc["samples"])
    scene.cycles.use_denoising = False
    # short light paths: a face under two area lights needs few bounces (2 cores, busy)
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 2
    scene.cycles.glossy_bounces = 1
    scene.cycles.transmission_bounces = 0
    scene.cycles.transparent_max_bounces = 2
    scene.cycles.seed = int(sc["seed"])
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 1
    scene.render.resolution_x = scene.render.resolution_y = int(sc["size"])
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"  # plain sRGB transfer, no filmic curve
    scene.view_settings.exposure = float(sc["exposure"])

    # mesh (already in Blender camera coordinates: camera at the origin looking down -Z)
    me = bpy.data.meshes.new("face")
    me.from_pydata(sc["verts"], [], sc["faces"])
    me.update()
    for p in me.polygons:
        p.use_smooth = True
    col = me.color_attributes.new("skin", "FLOAT_COLOR", "POINT")
    for i, c in enumerate(sc["colors"]):
        col.data[i].color = (c[0], c[1], c[2], 1.0)
    obj = bpy.data.objects.new("face", me)
    scene.collection.objects.link(obj)

    mat = bpy.data.materials.new("skin")
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    attr = nt.nodes.new("ShaderNodeVertexColor")
    attr.layer_name = "skin"
    # procedural skin-tone variation (blotches) multiplied onto the vertex colour
    noise = nt.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = float(sc["blotch_scale"])
    noise.inputs["Detail"].default_value = 4.0
    ramp = nt.nodes.new("ShaderNodeMapRange")
    ramp.inputs["To Min"].default_value = 1.0 - float(sc["blotch"])
    ramp.inputs["To Max"].default_value = 1.0 + float(sc["blotch"])
    mix = nt.nodes.new("ShaderNodeMixRGB")
    mix.blend_type = "MULTIPLY"
    mix.inputs["Fac"].default_value = 1.0
    nt.links.new(noise.outputs["Fac"], ramp.inputs["Value"])
    nt.links.new(attr.outputs["Color"], mix.inputs["Color1"])
    nt.links.new(ramp.outputs["Result"], mix.inputs["Color2"])
    nt.links.new(mix.outputs["Color"], bsdf.inputs["Base Color"])
    nt.links.new(mix.outputs["Color"], bsdf.inputs["Subsurface Color"])
    bsdf.subsurface_method = "BURLEY"  # Christensen-Burley diffusion (cheaper than random walk)
    bsdf.inputs["Subsurface"].default_value = float(sc["subsurface"])
    bsdf.inputs["Subsurface Radius"].default_value = (0.012, 0.004, 0.002)  # metres, red deepest
    bsdf.inputs["Roughness"].default_value = float(sc["roughness"])
    bsdf.inputs["Specular"].default_value = float(sc["specular"])
    # pores / fine bump
    pores = nt.nodes.new("ShaderNodeTexNoise")
    pores.inputs["Scale"].default_value = 900.0
    bump = nt.nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = float(sc["bump"])
    bump.inputs["Distance"].default_value = 0.0005
    nt.links.new(pores.outputs["Fac"], bump.inputs["Height"])
    nt.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    obj.data.materials.append(mat)

    cam_data = bpy.data.cameras.new("cam")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam_data.lens = float(sc["focal_px"]) * 36.0 / float(sc["size"])
    cam_data.clip_start = 0.01
    cam = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam

    for k, L in enumerate(sc["lights"]):
        ld = bpy.data.lights.new(f"light{k}", "AREA")
        ld.energy = float(L["energy"])
        ld.size = float(L["size"])
        ld.color = L["color"]
        lo = bpy.data.objects.new(f"light{k}", ld)
        lo.location = L["location"]
        # aim at the face centre
        import mathutils

        d = mathutils.Vector(sc["target"]) - mathutils.Vector(L["location"])
        lo.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(lo)

    world = bpy.data.worlds.new("env")
    world.use_nodes = True
    wn = world.node_tree
    bg = wn.nodes["Background"]
    grad = wn.nodes.new("ShaderNodeTexGradient")
    geo = wn.nodes.new("ShaderNodeTexCoord")
    ramp = wn.nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*sc["env_low"], 1.0)
    ramp.color_ramp.elements[1].color = (*sc["env_high"], 1.0)
    sep = wn.nodes.new("ShaderNodeSeparateXYZ")
    wn.links.new(geo.outputs["Generated"], sep.inputs["Vector"])
    wn.links.new(geo.outputs["Generated"], grad.inputs["Vector"])
    wn.links.new(grad.outputs["Fac"], ramp.inputs["Fac"])
    wn.links.new(ramp.outputs["Color"], bg.inputs["Color"])
    bg.inputs["Strength"].default_value = float(sc["env_strength"])
    scene.world = world

    scene.render.filepath = image_path
    bpy.ops.render.render(write_still=True)


# --------------------------------------------------------------------------------------------
# Role 2: facelab's Python (sampling, ground truth, driving Blender)
# --------------------------------------------------------------------------------------------
SKIN_TONES = (  # linear RGB base albedos, light to dark
    (0.62, 0.43, 0.34),
    (0.55, 0.36, 0.27),
    (0.45, 0.29, 0.21),
    (0.33, 0.2, 0.14),
    (0.2, 0.12, 0.08),
    (0.58, 0.42, 0.36),
)


def sample_scenes(n: int, seed: int, size: int, samples: int):
    """Scene dicts (for Blender) and ground-truth arrays of ``n`` faces."""
    import numpy as np
    import torch

    from facelab.geometry.camera import intrinsics, project
    from facelab.geometry.rotation import matrix_to_axis_angle, yaw_pitch_roll_to_matrix
    from facelab.models import load
    from facelab.models.morphable import pose_points

    full = load("ict")
    face = load("ict-face")
    names = list(full.expression_names)
    rng = np.random.default_rng(seed)
    regions = {k: v.numpy() for k, v in full.regions.items()}
    lm_ids = face.landmarks.numpy()
    keep_f = ~np.isin(full.faces.numpy(), np.where(regions["eye_extras"])[0]).any(1)
    faces = full.faces.numpy()[keep_f]
    gt = {k: [] for k in ("identity", "expression", "rotation", "translation", "focal",
                          "ypr", "landmarks2d", "kind", "split")}  # fmt: skip
    scenes = []
    for i in range(n):
        b = YAW_BINS[(i // 2) % len(YAW_BINS)]
        yaw = float(rng.uniform(*b)) * (1 if rng.random() < 0.5 else -1)
        pitch, roll = float(rng.uniform(-12, 10)), float(rng.uniform(-6, 6))
        kind = KINDS[(i // 6) % len(KINDS)]
        ident = torch.from_numpy(rng.standard_normal(full.n_identity) * 0.9).float()
        expr = torch.zeros(full.n_expression)
        if kind == "jaw_open":
            expr[names.index("jawOpen")] = float(rng.uniform(0.25, 0.6))
        elif kind == "smile":
            s = float(rng.uniform(0.45, 0.85))
            expr[names.index("mouthSmile_L")] = s
            expr[names.index("mouthSmile_R")] = s * float(rng.uniform(0.8, 1.0))
            expr[names.index("cheekSquint_L")] = 0.3 * s
            expr[names.index("cheekSquint_R")] = 0.3 * s
        verts = full.forward(ident[None], expr[None])  # (1, V, 3) cm
        R = yaw_pitch_roll_to_matrix(torch.tensor([yaw, pitch, roll]), degrees=True)
        rot = matrix_to_axis_angle(R)
        fov = float(rng.uniform(12, 30))
        f = 0.5 * size / math.tan(math.radians(fov) / 2)
        # distance so that the 68-landmark box is ~40-52 % of the image
        target_px = float(rng.uniform(0.4, 0.52)) * size
        t = torch.tensor([0.0, 0.0, 100.0])
        K = intrinsics(torch.tensor([f]), torch.tensor([f]), size / 2, size / 2)
        for _ in range(3):
            pc = pose_points(verts[:, :11248], rot[None], t[None])
            lm2 = project(pc[:, lm_ids], K)[0]
            span = float((lm2.amax(0) - lm2.amin(0)).max())
            t[2] = t[2] * span / target_px
        # centre the face (landmark box) with a small random offset
        for _ in range(2):
            pc = pose_points(verts[:, :11248], rot[None], t[None])
            lm2 = project(pc[:, lm_ids], K)[0]
            c = (lm2.amax(0) + lm2.amin(0)) / 2
            off = torch.tensor(rng.uniform(-0.05, 0.05, 2) * size, dtype=torch.float32)
            t[:2] = t[:2] - (c - size / 2 - off) * t[2] / f
        posed = pose_points(verts, rot[None], t[None])[0]
        lm2 = project(posed[None, lm_ids], K)[0]
        # per-vertex colours: skin tone, lips, brows, eyes, teeth, mouth
        tone = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]) * rng.uniform(0.9, 1.1, 3)
        col = np.tile(tone, (full.n_vertices, 1))
        mv = verts[0].numpy()
        lm3 = mv[lm_ids]
        d_lip = np.linalg.norm(mv[:, None] - lm3[None, 48:60], axis=-1).min(1)
        lip = np.clip(1.2 - d_lip / 0.45, 0, 1)[:, None] * regions["skin"][:, None]
        col = col * (1 - 0.5 * lip) + lip * 0.5 * np.array([0.45, 0.12, 0.12])
        d_brow = np.full(len(mv), np.inf)
        for a, b2 in [(j, j + 1) for j in range(17, 21)] + [(j, j + 1) for j in range(22, 26)]:
            seg = lm3[b2] - lm3[a]
            u = np.clip(((mv - lm3[a]) @ seg) / (seg @ seg), 0, 1)
            d_brow = np.minimum(d_brow, np.linalg.norm(mv - lm3[a] - u[:, None] * seg, axis=1))
        brow = np.clip(1.6 - d_brow / 0.4, 0, 1)[:, None] * regions["skin"][:, None]
        hair = np.array([0.03, 0.02, 0.015]) * rng.uniform(0.6, 3.0)
        col = col * (1 - 0.85 * brow) + 0.85 * brow * hair
        eye = regions["eyeballs"]
        for side in (eye & (mv[:, 0] < 0), eye & (mv[:, 0] >= 0)):
            cen = mv[side].mean(0)
            d = mv[side] - cen
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            cosang = d[:, 2]  # model +z points forward
            c = np.tile([0.7, 0.68, 0.65], (int(side.sum()), 1))
            iris = np.array([0.12, 0.07, 0.03]) * rng.uniform(0.5, 2.0)
            c[cosang > 0.9] = iris
            c[cosang > 0.975] = [0.01, 0.01, 0.01]
            col[side] = c
        col[regions["teeth"]] = [0.7, 0.65, 0.55]
        col[regions["gums_tongue"]] = [0.35, 0.08, 0.08]
        col[regions["mouth_socket"]] = [0.08, 0.02, 0.02]
        col[regions["eye_sockets"]] = tone * 0.4
        col = np.clip(col, 0, 1)
        pb = posed.numpy() * np.array([1.0, -1.0, -1.0]) / 100.0  # cm -> m, OpenCV -> Blender
        centre = pb[lm_ids].mean(0)
        lights = []
        key_az = math.radians(float(rng.uniform(-70, 70)))
        key_el = math.radians(float(rng.uniform(-10, 50)))
        for k, (az, el, energy) in enumerate(
            (
                (key_az, key_el, float(rng.uniform(12, 35))),
                (-key_az * 0.7 + rng.uniform(-0.3, 0.3), float(rng.uniform(0, 0.4)),
                 float(rng.uniform(3, 15))),
            )
        ):  # fmt: skip
            dist = float(rng.uniform(0.6, 1.2))
            loc = centre + dist * np.array(
                [math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)]
            )
            warm = rng.uniform(0.85, 1.0, 3)
            lights.append(
                {"location": loc.tolist(), "energy": energy * dist**2,
                 "size": float(rng.uniform(0.2, 0.8)) if k == 0 else 1.0,
                 "color": (warm / warm.max()).tolist()}
            )  # fmt: skip
        scenes.append(
            {
                "size": size, "samples": samples, "seed": int(seed * 1000 + i),
                "verts": np.round(pb, 6).tolist(), "faces": faces.tolist(),
                "colors": np.round(col, 4).tolist(), "focal_px": f,
                "subsurface": float(rng.uniform(0.05, 0.25)),
                "roughness": float(rng.uniform(0.35, 0.65)),
                "specular": float(rng.uniform(0.3, 0.6)),
                "bump": float(rng.uniform(0.02, 0.1)),
                "blotch": float(rng.uniform(0.05, 0.2)),
                "blotch_scale": float(rng.uniform(20, 80)),
                "lights": lights, "target": centre.tolist(),
                "env_low": rng.uniform(0.0, 0.5, 3).tolist(),
                "env_high": rng.uniform(0.2, 1.0, 3).tolist(),
                "env_strength": float(rng.uniform(0.2, 1.0)),
                "exposure": float(rng.uniform(-0.3, 0.3)),
            }
        )  # fmt: skip
        ypr = [yaw, pitch, roll]
        gt["identity"].append(ident.numpy())
        gt["expression"].append(expr.numpy())
        gt["rotation"].append(rot.numpy())
        gt["translation"].append(t.numpy())
        gt["focal"].append(f)
        gt["ypr"].append(ypr)
        gt["landmarks2d"].append(lm2.numpy())
        gt["kind"].append(kind)
        gt["split"].append("tuning" if i % 2 == 0 else "report")
    arrays = {
        k: np.asarray(v, dtype=np.float32) if k not in ("kind", "split") else np.asarray(v)
        for k, v in gt.items()
    }
    return scenes, arrays


def main(argv=None) -> int:
    import argparse

    if "--scene" in sys.argv:  # role 1: inside Blender
        args = sys.argv[sys.argv.index("--") + 1 :]
        blender_render(args[args.index("--scene") + 1], args[args.index("--image") + 1])
        return 0

    import os
    import shutil
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    import numpy as np
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/data/blender_eval")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=48, help="Cycles samples per pixel")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--only", type=int, nargs="*", help="render only these sample numbers")
    ap.add_argument("--quality", type=int, default=92, help="JPEG quality")
    args = ap.parse_args(argv)
    blender = shutil.which("blender")
    if blender is None:
        print("blender not found: apt-get install -y blender", file=sys.stderr)
        return 2
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    scenes, gt = sample_scenes(args.n, args.seed, args.size, args.samples)
    np.savez_compressed(out / "gt.npz", **gt)
    todo = range(args.n) if not args.only else args.only
    with tempfile.TemporaryDirectory() as tmp:
        for i in todo:
            sp, ip = Path(tmp) / f"{i}.json", Path(tmp) / f"{i}.png"
            sp.write_text(json.dumps(scenes[i]))
            t0 = time.perf_counter()
            subprocess.run(
                [blender, "-b", "-t", "1", "--python", os.path.abspath(__file__), "--",
                 "--scene", str(sp), "--image", str(ip)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            Image.open(ip).convert("RGB").save(
                out / "images" / f"{i:03d}.jpg", quality=args.quality
            )
            print(f"{i:3d} yaw {gt['ypr'][i][0]:+6.1f} {gt['kind'][i]:8s} "
                  f"{time.perf_counter() - t0:5.1f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
