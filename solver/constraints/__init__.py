"""One module per constraint of the placement problem.

Each module states its rule in a model with ``add(mip)``, where ``mip`` is anything that keeps the
small ``solver.constraints.builder.ModelBuilder`` Protocol (``solver.mip.PlacementMip`` does), and
recomputes it from the problem and a plan alone with ``check(problem, plan)``, for the independent
checker (``solver.validate``). The pure rules both build on live in ``solver.rules``; the checks share
no code with the model builders (the checker's flow is ``routable``).
"""
