"""Provisioner adapters: the contract (``base``), the tag mappings (``tags``), deterministic names
(``naming``), the built-in adapters' coverage (``coverage``), the registry (``registry``), one module per
cloud (``aws``, ``gcp``, ``azure``, ``skypilot``), each imported only when its adapter is built, and the
simulated cloud (``simulated``, its faults in ``faults``) that the demo and the tests apply plans to.
See docs/provisioners.md and docs/operations.md."""
