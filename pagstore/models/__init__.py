"""Classifiers keyed by name: ``build_model(name, num_classes, sample_shape, **kw)``.

Names: resnet18, wrn-34-10, vgg11, vgg13, vgg16, vit, mlp-mixer, small-cnn, mlp. Every model takes
model-space float input (B, *S) ([0, 1] images; normalisation is a fixed buffer inside) and returns logits.
"""

from pagstore.models import mixer, mlp, resnet, small_cnn, vgg, vit, wrn  # noqa: F401  (register families)
from pagstore.models.registry import Classifier, Normalize, build_model, model_names, register

__all__ = ["Classifier", "Normalize", "build_model", "model_names", "register"]
