"""Reward functions: small, pure, one signature per family.

Rule verifiers: ``fn(response, references, **options) -> Check`` (see ``base.py``),
registered with their options in ``registry.py``. Group-level aspects (length) take the
whole GRPO group.
"""
