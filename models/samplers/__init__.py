"""Samplers: the reference torch loop and the fast paths, all on one protocol."""
