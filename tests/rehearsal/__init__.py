"""Test helpers that build stand-ins of the external assets a real run reads, in the same formats
and at the same paths (Open-Sora-Plan checkout and weights, ...)."""
