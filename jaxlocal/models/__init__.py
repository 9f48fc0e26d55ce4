"""Flax modules: layers, the block forward parts of MLPs and VGGs, and auxiliary heads."""
