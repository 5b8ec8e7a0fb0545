"""Commitment planning: which reserved terms to buy for a profile of hourly demand (docs/planners.md)."""
