"""Runnable examples of aiomasto (not part of the installed package)."""
