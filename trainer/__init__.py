"""veRL GRPO trainer integration: a reward client and a veRL reward manager over HTTP.

Clients build requests with ``harmo.protocol``, the shared contract.
"""
