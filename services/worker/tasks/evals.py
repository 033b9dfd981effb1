"""Evaluation tasks (queue evals)."""
