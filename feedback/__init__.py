"""Closed loop: outcomes → store → labelled score-log rows → report, drift and decay → retrain on evidence."""
