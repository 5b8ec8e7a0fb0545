"""gpuplan's outer layer: the command line and the REST API."""
