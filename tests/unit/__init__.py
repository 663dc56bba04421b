"""Specification-style tests of hurtle's parts, with the memory broker."""
