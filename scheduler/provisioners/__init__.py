"""Provisioner adapters: launch, terminate and list cloud instances behind one Protocol (base.py)."""
