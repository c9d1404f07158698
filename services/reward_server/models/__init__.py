"""Model-based rewards: backends (embedding, reward models, judges), their dynamic batchers,
and the registry that loads them once and reports readiness."""
