"""One module per constraint of the placement problem.

Each module holds the rule as pure functions, ``add(mip)`` that writes it into a ``PlacementMip``, and
``check(problem, plan)`` that recomputes it from the problem and a plan alone, for the independent
checker (``solver.validate``). The checks share no code with the model builders.
"""
