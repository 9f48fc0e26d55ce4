"""Explicit (non-autodiff) learning rules."""
