"""Units inside the solver's models: money in USD per hour, traffic in thousands of tokens per second.

Keeping coefficients near 1 helps the MIP solvers' numerics; values convert back exactly at the edge.
"""

MICRO = 1_000_000.0
"""Micro-USD per USD."""
KTOK = 1000.0
"""Tokens per second per model traffic unit."""
