"""gpuplan's pricing layer: the shipped catalog, price collectors and normalisation to solver types.

Touches no database: collectors return normalised offers and observations; scheduler/ stores them.
"""
