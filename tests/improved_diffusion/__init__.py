"""Tests of the in-tree improved-diffusion package (package so test module names stay unique)."""
