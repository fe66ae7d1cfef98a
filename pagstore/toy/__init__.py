"""The paper's 2-D toy experiment (Appendix G.1): vanilla vs NN-PAG on a line-shaped Gaussian mixture."""
