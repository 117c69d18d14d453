"""Helpers shared by test tiers: local stand-ins for remote services."""
