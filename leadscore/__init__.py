"""leadscore: calibrated lead scoring and propensity, configured per motion (B2B, B2C, hybrid).

This package is the core every stage may import, and it imports none of them: settings, the per-motion
configuration, the motions, the canonical schema, time parsing, errors and the relational store. The flow is
one direction: data → ``features`` → ``training`` → ``model`` (the MLflow registry) → ``serving`` (BentoML) →
outcomes → ``feedback`` → ``training``; the ``cli`` package sits on top.
"""

__version__ = "0.1.0"
