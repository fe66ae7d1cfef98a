"""In-tree re-implementation of improved-diffusion (class-conditional UNet + Gaussian diffusion).

Design credit: "Improved Denoising Diffusion Probabilistic Models", Alex Nichol and Prafulla Dhariwal,
ICML 2021, and its code openai/improved-diffusion (MIT licence). This package is written afresh from the
paper and the original's documented interfaces; module and parameter names follow the original so its
checkpoints load with ``strict=True``. Changes: ``num_classes`` is the dataset's C + 1 (label C = "no
class"), not a hard-coded 1000; no mpi4py (single process or torch.distributed); the network never sees
the noise schedule (the diffusion maps step indices to the network's timesteps).
"""

from pagstore.improved_diffusion.gaussian_diffusion import GaussianDiffusion, get_named_beta_schedule
from pagstore.improved_diffusion.respace import SpacedDiffusion, space_timesteps
from pagstore.improved_diffusion.script_util import create_model_and_diffusion, model_and_diffusion_defaults
from pagstore.improved_diffusion.unet import UNetModel

__all__ = [
    "GaussianDiffusion",
    "SpacedDiffusion",
    "UNetModel",
    "create_model_and_diffusion",
    "get_named_beta_schedule",
    "model_and_diffusion_defaults",
    "space_timesteps",
]
