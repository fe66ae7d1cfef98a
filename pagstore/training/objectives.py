"""Training objectives composed from parts: a base term (CE, AT-PGD or TRADES) plus an optional PAG term.

``objective`` names the base: "ce" (vanilla), "pag" (CE + lambda * PAG), "at" (CE on PGD examples),
"trades" (CE + beta * KL(clean || adversarial)), "gradnorm" (CE + lambda * ||grad_x CE||^2, a control;
see :mod:`pagstore.training.controls`). Any base gets the PAG term when ``store`` is set
(AT + PAG and TRADES + PAG of the paper's Table 4). One function computes every combination, so the
training loop stays single.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from pagstore.training.frozen_bn import batch_norm_layers, frozen_batch_norm, record_batch_stats
from pagstore.loss import input_grads_shared_forward, pag_alignment_loss, sample_target_classes
from pagstore.training.attacks import pgd
from pagstore.training.augment import Augmentation
from pagstore.training.explicit_grads import explicit_input_grads, explicit_supported

STORE_SOURCES = ("sbg", "oi", "cm", "nn", "nac")
PAG_BN = ("batch", "frozen")


@dataclass(frozen=True)
class ObjectiveSpec:
    """One method of ``train.methods`` in pipeline.yaml.

    Attributes:
        objective: base term, "ce" | "pag" | "at" | "trades".
        store: gradient source whose store feeds the PAG term (``stores/<store>``), or None.
        lam: weight of the PAG term (> 0 exactly when ``store`` is set).
        norm, eps, steps: PGD threat model for "at" / "trades" (step size 1.5 * eps / steps).
        beta: TRADES weight of the KL term.
        k_classes: align K sampled target classes per image (None = all C), scaled by C / K.
        cos_eps: the epsilon floor of the cosine loss (Eq. 5).
        pag_bn: batch-norm statistics inside the PAG pass: "frozen" (default) = the clean batch's,
            constant w.r.t. the repeated rows (pagstore.training.frozen_bn; no cross-row terms, a far
            cheaper step, robustness not distinguishable from "batch" in the evidence experiment,
            docs/pag-step.md), "batch" = the repeated rows' own batch statistics (the reference code's).
        targets: what the PAG term aligns with: "store" (the stored gradients), or a control, "random"
            (Gaussian) / "shuffled" (another image's stored gradients, same class index).
    """

    objective: Literal["ce", "pag", "at", "trades", "gradnorm"]
    store: str | None = None
    lam: float = 0.0
    norm: Literal["l2", "linf"] = "linf"
    eps: float = 0.0
    steps: int = 7
    beta: float = 6.0
    k_classes: int | None = None
    cos_eps: float = 1e-8
    pag_bn: Literal["batch", "frozen"] = "frozen"
    targets: Literal["store", "random", "shuffled"] = "store"

    @property
    def uses_store(self) -> bool:
        return self.store is not None

    def validate(self) -> None:
        if self.store is not None and self.store not in STORE_SOURCES:
            raise ValueError(f"store: expected null or one of {list(STORE_SOURCES)}, got {self.store!r}")
        if self.objective == "pag" and self.store is None:
            raise ValueError("objective 'pag' needs a store (the gradients to align with)")
        if self.objective == "ce" and self.store is not None:
            raise ValueError("objective 'ce' with a store is PAG: write objective: pag")
        if self.store is not None and not self.lam > 0:
            raise ValueError(f"lam must be > 0 when a store is used, got {self.lam}")
        if self.objective == "gradnorm":
            if self.store is not None or not self.lam > 0:
                raise ValueError(f"objective 'gradnorm' needs store: null and lam > 0, got store={self.store!r}, "
                                 f"lam={self.lam}")
        elif self.store is None and self.lam != 0:
            raise ValueError(f"lam={self.lam} has no effect without a store; set store or lam: 0")
        if self.targets != "store" and self.store is None:
            raise ValueError(f"targets {self.targets!r} transforms a store's gradients: set store")
        if self.objective in ("at", "trades") and not self.eps > 0:
            raise ValueError(f"objective {self.objective!r} needs eps > 0, got {self.eps}")
        if self.eps < 0 or self.steps < 1 or self.beta < 0 or self.cos_eps <= 0:
            raise ValueError(
                f"need eps >= 0, steps >= 1, beta >= 0, cos_eps > 0; got eps={self.eps}, steps={self.steps}, "
                f"beta={self.beta}, cos_eps={self.cos_eps}"
            )
        if self.pag_bn not in PAG_BN:
            raise ValueError(f"pag_bn: expected one of {list(PAG_BN)}, got {self.pag_bn!r}")
        if self.k_classes is not None and self.k_classes < 1:
            raise ValueError(f"k_classes must be >= 1 or null, got {self.k_classes}")


def _pag_term_frozen_bn(
    model: nn.Module, x: torch.Tensor, grads: torch.Tensor, targets: torch.Tensor | None, spec: ObjectiveSpec,
    augment: Augmentation | None, classes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The PAG term with batch norm frozen at the clean (augmented) batch's statistics.

    Returns (pag, clean logits (B, C) for the CE term, or None for AT, whose CE is on adversarial
    examples: there the clean forward exists for the statistics (and their parameter path) only and
    leaves the running statistics as they were).
    """
    xa = augment(x) if augment is not None else x
    if spec.objective == "at":
        with record_batch_stats(model, update_running=False) as stats:
            model(xa)
        logits = None
    else:
        with record_batch_stats(model) as stats:
            logits = model(xa)
    # Under frozen statistics the rows do not interact, so the T input-gradients of an image are T
    # vector-Jacobian products of one forward of the B images (no B x T repeated forward to run and
    # back-propagate): the same loss. Piecewise-linear sequential nets get them written out (no double
    # backward at all), others through autograd's batched backward.
    if explicit_supported(model):
        grads_fn = partial(explicit_input_grads, model, stats=stats, augment=augment)
    else:
        grads_fn = partial(input_grads_shared_forward, model, augment=augment)
    with frozen_batch_norm(stats):
        pag = pag_alignment_loss(model, x, grads, targets, eps=spec.cos_eps, classes=classes, input_grads=grads_fn)
    return pag, logits


def objective_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    grads: torch.Tensor | None,
    spec: ObjectiveSpec,
    *,
    augment: Augmentation | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
    classes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss for one batch and its terms (floats, for logging).

    Args:
        x: (B, *S) un-augmented model-space inputs; y: int64 (B,); grads: (B, C, *S) stored gradients
            (required when ``spec.store`` is set, ignored otherwise).
        augment: per-sample augmentation applied inside the graph (images only).
        clamp: valid input range for adversarial examples, None for vector data.
        classes: (B, K) class ids of ``grads`` from a K < C store (None: K = C, slot c is class c).
    Returns:
        (scalar loss with graph, {"loss", "ce", "adv", "pag", "acc"}).
    """
    terms: dict[str, float] = {}
    pag = logits = None
    if spec.uses_store:
        if grads is None:
            raise ValueError(f"objective with store {spec.store!r} needs stored gradients in every batch")
        c = grads.shape[1]
        k = c if spec.k_classes is None else spec.k_classes  # k <= C is checked by train_method
        stored = classes is not None
        if stored:  # K-of-C store: k <= K of its classes, the true class (slot 0) always
            k = min(k, c)
            slots = sample_target_classes(torch.zeros_like(y), c, k, generator) if k < c else \
                torch.arange(c).expand(len(y), c)
            targets = classes.gather(1, slots.to(classes.device))
        else:
            targets = sample_target_classes(y, c, k, generator) if k < c else torch.arange(c).expand(len(y), c)
        targets = targets.to(y.device)
        # all C in order: None lets the loss use the stored gradients as they are (no gather copy)
        loss_targets = None if k == c and not stored else targets
        stored_classes = classes if stored else None
        if spec.pag_bn == "frozen" and batch_norm_layers(model):
            pag, logits = _pag_term_frozen_bn(model, x, grads, loss_targets, spec, augment, stored_classes)
        else:
            aug_rep = augment.repeat_interleave(k) if augment is not None else None
            pag, rep_logits = pag_alignment_loss(model, x, grads, loss_targets, augment=aug_rep,
                                                 eps=spec.cos_eps, return_logits=True, classes=stored_classes)
        if spec.objective == "pag" and logits is None:
            # The true class is among the targets, and its row is model(augment(x)) with the same BN batch
            # statistics (repeating each image k times leaves them unchanged): reuse it for the CE term.
            pos = (targets == y[:, None]).float().argmax(dim=1)
            logits = rep_logits[torch.arange(len(y), device=y.device), pos]
        terms["pag"] = float(pag.detach())
    if spec.objective == "gradnorm":
        from pagstore.training.controls import grad_norm_penalty

        pen, logits = grad_norm_penalty(model, x, y, augment)
        terms["gradnorm"] = float(pen.detach())
        loss = F.cross_entropy(logits, y)
        terms["ce"] = float(loss.detach())
        terms["acc"] = float((logits.argmax(1) == y).float().mean())
        loss = loss + spec.lam * pen
        terms["loss"] = float(loss.detach())
        return loss, terms
    xa = augment(x) if augment is not None else x
    if spec.objective == "at":
        x_adv = pgd(model, xa, y, norm=spec.norm, eps=spec.eps, steps=spec.steps, clamp=clamp, generator=generator)
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
        terms["adv"] = float(loss.detach())
    else:
        logits = model(xa) if logits is None else logits
        loss = F.cross_entropy(logits, y)
        terms["ce"] = float(loss.detach())
        if spec.objective == "trades":
            x_adv = pgd(model, xa, norm=spec.norm, eps=spec.eps, steps=spec.steps, loss="kl", clamp=clamp,
                        generator=generator)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
            loss = loss + spec.beta * kl
            terms["adv"] = float(kl.detach())
    terms["acc"] = float((logits.argmax(1) == y).float().mean())
    if pag is not None:
        loss = loss + spec.lam * pag
    terms["loss"] = float(loss.detach())
    return loss, terms
