"""leadscore: calibrated lead scoring and propensity, configured per motion (B2B, B2C, hybrid).

The flow is one direction: canonical data (``leadscore.schema``) → ``features`` → ``training`` (MLflow
registry) → ``serving`` (BentoML) → outcomes → ``feedback`` → ``training``.
"""

MOTIONS = ("b2b", "b2c", "hybrid")
__version__ = "0.1.0"
