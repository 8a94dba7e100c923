"""A small GAN toolkit: StyleGAN2 / progressive generators, discriminator, losses, training.

- :mod:`facelab.gan.networks`: ``Generator`` (mapping network, modulated convolution, noise, skip
  or progressive output), ``Discriminator`` (residual, minibatch std), conditioning hooks.
- :mod:`facelab.gan.resample`: anti-aliased 2x up/down sampling with a separable FIR filter
  (StyleGAN2's ``upfirdn2d``, e.g. ``[1, 3, 3, 1]``).
- :mod:`facelab.gan.loss`: non-saturating logistic loss, R1.
- :mod:`facelab.gan.augment`: differentiable augmentation.
- :mod:`facelab.gan.loop`: the training step and loop every GAN trainer shares (D step with lazy
  R1, G step, EMA, log rows, checkpoints, time cap).
- :mod:`facelab.gan.train`: the seeded, resumable, distributed texture-GAN trainer (``python -m facelab.gan.train``).
- :mod:`facelab.gan.checkpoint`: safetensors + JSON checkpoints (no pickle).
- :mod:`facelab.gan.metrics`: spectra, FID-/KID-style distances in a given feature space, precision/recall.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .loss import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from .networks import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    MappingNetwork,
    minibatch_stddev,
    modulated_conv2d,
    modulated_conv2d_reference,
)

__all__ = [
    "Discriminator",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "MappingNetwork",
    "d_logistic_loss",
    "g_nonsaturating_loss",
    "load_checkpoint",
    "minibatch_stddev",
    "modulated_conv2d",
    "modulated_conv2d_reference",
    "r1_penalty",
    "save_checkpoint",
]
