"""Original openai/improved-diffusion checkpoints (bare ``state_dict`` files) -> our diffusion checkpoint.

The model is described by the original's own command-line flags (``--image_size 32 --num_channels 128
--learn_sigma True ...``, parsed as its ``add_dict_to_argparser`` / ``str2bool`` do). Our UNet has the same
state_dict layout, so the weights load as they are; the result is loadable by ``load_checkpoint``.
The label count comes from the file (``label_emb.weight`` rows), not the original's hard-coded 1000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pagstore.interop import InteropError
from pagstore.interop.torch_files import safe_load, sha256_file

# Flags of the original's training scripts that do not describe the model or diffusion: accepted, recorded.
TRAIN_FLAGS = ("data_dir", "schedule_sampler", "lr", "weight_decay", "lr_anneal_steps", "batch_size",
               "microbatch", "ema_rate", "log_interval", "save_interval", "resume_checkpoint", "use_fp16",
               "fp16_scale_growth", "num_samples", "use_ddim", "model_path", "clip_denoised")
_TRUE, _FALSE = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")


def parse_flags(argv: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``["--image_size", "32", "--learn_sigma", "True", ...]`` -> (model/diffusion flags, ignored train flags).

    Values are typed by the defaults (bools as the original's str2bool); ``--flag=value`` works too.
    Raises InteropError naming an unknown flag, a flag without value or a value of the wrong type.
    """
    from pagstore.improved_diffusion.script_util import model_and_diffusion_defaults

    defaults = model_and_diffusion_defaults()
    args = [a for arg in argv for a in (arg.split("=", 1) if arg.startswith("--") and "=" in arg else [arg])]
    flags: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    i = 0
    while i < len(args):
        key = args[i]
        if not key.startswith("--"):
            raise InteropError(f"improved-diffusion flags: expected --name, got {key!r}")
        name = key[2:]
        if i + 1 >= len(args):
            raise InteropError(f"improved-diffusion flags: {key} has no value")
        value = args[i + 1]
        i += 2
        if name in TRAIN_FLAGS:
            ignored[name] = value
        elif name not in defaults:
            raise InteropError(f"improved-diffusion flags: unknown flag {key} (known: "
                               f"{', '.join(sorted(defaults))})")
        else:
            flags[name] = _typed(name, value, defaults[name])
    return flags, ignored


def _typed(name: str, value: str, default: Any) -> Any:
    if isinstance(default, bool):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise InteropError(f"improved-diffusion flags: --{name} expects a boolean, got {value!r}")
    if name == "channel_mult":
        return [int(v) for v in value.split(",") if v.strip()]
    if name == "num_classes":
        return None if value.lower() == "none" else int(value)
    try:
        return type(default)(value) if default is not None and not isinstance(default, str) else value
    except ValueError:
        raise InteropError(f"improved-diffusion flags: --{name} expects {type(default).__name__}, "
                           f"got {value!r}") from None


def check_state(state: Mapping[str, torch.Tensor], ours: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse a state_dict that does not fit the flags' model, naming the first offending key."""
    for key, ref in ours.items():
        if key not in state:
            raise InteropError(f"{where}: key {key!r} (shape {tuple(ref.shape)} for these flags) is missing "
                               "from the state_dict")
        if tuple(state[key].shape) != tuple(ref.shape):
            raise InteropError(f"{where}: key {key!r}: the file has shape {tuple(state[key].shape)}, the flags "
                               f"give {tuple(ref.shape)}")
    extra = [k for k in state if k not in ours]
    if extra:
        raise InteropError(f"{where}: key {extra[0]!r} (shape {tuple(state[extra[0]].shape)}) is not part of the "
                           f"model these flags describe ({len(extra)} such key(s))")


def import_diffusion(path: str | Path, out: str | Path, flags: Sequence[str], *,
                     num_classes: int | None = None) -> dict[str, Any]:
    """Convert an original improved-diffusion ``state_dict`` file into our checkpoint at ``out``.

    Args:
        path: the bare state_dict (``torch.save(model.state_dict())``).
        flags: the original flags of the model and diffusion (MODEL_FLAGS and DIFFUSION_FLAGS).
        num_classes: label count of a class-conditional model; default: rows of ``label_emb.weight``.
    Returns:
        the config written (``create_model_and_diffusion`` kwargs) plus the source record.
    """
    from pagstore.improved_diffusion.checkpoint import save_checkpoint
    from pagstore.improved_diffusion.script_util import create_model_and_diffusion

    cfg, ignored = parse_flags(flags)
    state = safe_load(path, "an improved-diffusion state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise InteropError(f"{path}: expected a bare state_dict (names -> tensors), found {type(state).__name__}")
    if cfg.get("class_cond"):
        if "label_emb.weight" not in state:
            raise InteropError(f"{path}: --class_cond True but the state_dict has no 'label_emb.weight'")
        found = int(state["label_emb.weight"].shape[0])
        for name, asked in (("--num-classes", num_classes), ("--num_classes", cfg.get("num_classes"))):
            if asked is not None and asked != found:
                raise InteropError(f"{path}: {name} {asked} but 'label_emb.weight' has {found} rows")
        cfg["num_classes"] = found
    elif "label_emb.weight" in state:
        raise InteropError(f"{path}: the state_dict has 'label_emb.weight' (a class-conditional model); "
                           "pass --class_cond True")
    try:
        model, _ = create_model_and_diffusion(**cfg)
    except (TypeError, ValueError) as exc:
        raise InteropError(f"improved-diffusion flags: {exc}") from None
    check_state(state, model.state_dict(), str(path))
    weights = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
    model.load_state_dict(weights, strict=True)
    source = {"format": "improved-diffusion state_dict", "file": Path(path).name, "sha256": sha256_file(path),
              "flags": list(flags), "ignored_flags": ignored}
    # EMA = the weights themselves: released files are already the EMA (or the only) weights.
    save_checkpoint(out, model, weights, None, step=0, config=cfg, dataset_fingerprint="", imported_from=source)
    return {"config": cfg, "source": source}
