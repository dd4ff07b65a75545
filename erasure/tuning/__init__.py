"""Sweeps and the equal-budget tuning protocol (Optuna): trials are jobs on the same executors."""
