"""Maintainer tools: not part of the installed package, never imported by gpuplan at run time."""
