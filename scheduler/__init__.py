"""gpuplan's service core: settings, database, services (ingest, planning, plan lifecycle), jobs."""
