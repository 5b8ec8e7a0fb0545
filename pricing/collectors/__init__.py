"""Price and availability collectors; see ``pricing.collectors.base`` for the interface."""
