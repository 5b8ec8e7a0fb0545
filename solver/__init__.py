"""gpuplan's solver layer: the domain types, the placement problem and its solution.

Pure: imports nothing of gpuplan's other layers and does no I/O (no database, HTTP, clock or environment).
"""
