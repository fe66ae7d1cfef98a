"""The paper's 2-D toy experiment (Appendix G.1): vanilla vs NN-PAG on a line-shaped Gaussian mixture.

``experiment.run_toy(params, train, test, store_dir)`` runs it (NN gradient stores through the distill engine,
the one training loop, several seeds); ``evaluate`` holds its metrics (clean, L2 PGD, grid-searched
robust accuracy, alignment of input-gradients with the data line); ``plots`` draws Figure 4;
``config.ToyParams`` is the ``toy`` section of pipeline.yaml.
"""
