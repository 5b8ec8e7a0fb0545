"""Provisioner adapters: the contract (``base``), the tag mappings (``tags``), deterministic names
(``naming``), the built-in adapters' coverage (``coverage``), the registry (``registry``) and one module per
cloud (``aws``, ``gcp``, ``azure``, ``skypilot``), each imported only when its adapter is built.
See docs/provisioners.md."""
