"""Autograder for NNTI exercise sheet 6."""
__version__ = "0.1.0"
