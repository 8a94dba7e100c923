"""``facelab train texture-gan`` — train the GANFit-style UV texture GAN.

``facelab train texture-gan [--config cpu-64|gpu-128|tiny-16] [--out DIR] [--work-dir DIR]
[--steps N] [--seed S] [--max-minutes M] [--no-resume] [--threads T] [--set KEY=JSON]``
trains (resuming from ``--work-dir``'s checkpoint when there is one) and exports the EMA
generator, its JSON config and the training log to ``--out``. The shipped model was made with
``facelab train texture-gan --config cpu-64 --out facelab/assets/texture_gan``.
Under ``torchrun --nproc-per-node N -m facelab.gan.train ...`` the same options run
distributed. Prints one JSON line ``{"step", "wall_time_s", "stop_reason", "last"}``.
"""

from __future__ import annotations

import argparse

from ._util import add_command_group, check_at_least, check_output_dir, setup_compute


def _check(args: argparse.Namespace) -> None:
    """The command-line rules: every argument and output folder is checked before training
    starts (a bad ``--config`` / ``--set``, ``--steps``, ``--max-minutes``, ``--threads``, an
    unwritable ``--out`` or ``--work-dir`` is one line, exit 1, no checkpoint touched)."""
    from ..errors import InvalidInput
    from ..gan.train import config_from_args

    config_from_args(args)  # unknown config, malformed --set, unknown fields
    check_at_least(args.steps, "--steps", 1)
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InvalidInput(f"--max-minutes must be > 0, got {args.max_minutes}")
    check_output_dir(args.out)
    check_output_dir(args.work_dir, "--work-dir")
    setup_compute(args)  # --threads >= 0 (0: torch's default)


def _run(args: argparse.Namespace) -> int:
    from ..gan.train import run

    _check(args)
    return run(args)


def register(sub: argparse._SubParsersAction) -> None:
    from ..gan.train import add_arguments

    tsub = add_command_group(sub, "train", "train a model (the texture GAN)")
    t = tsub.add_parser("texture-gan", help="the UV texture GAN of chapter 6")
    add_arguments(t)
    t.add_argument("--json", action="store_true", help="(the summary line is always JSON)")
    t.set_defaults(func=_run)
