"""Interop with files made elsewhere: the paper's released gradient sets and classifiers (royg27/PAG-ROB)
and original openai/improved-diffusion state_dicts. Nothing heavy is imported here; import the submodules:

- ``pagstore.interop.pag_rob``: official gradient sets <-> gradient stores;
- ``pagstore.interop.classifier_import``: official ResNet-18 / ViT state_dicts -> our classifier checkpoint;
- ``pagstore.interop.diffusion_import``: bare improved-diffusion state_dicts + original flags -> our checkpoint.
"""


class InteropError(ValueError):
    """A file from elsewhere is unsafe, malformed or does not fit: the message names the file (and row)."""
