"""pagstore: Perceptually Aligned Gradients as a staged pipeline around sharded gradient stores.

The public API is small and import-light: reading a store never imports dvc, dask.distributed or
pyautoattack.
"""

__version__ = "0.1.0"
