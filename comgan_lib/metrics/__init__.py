"""Evaluation metrics: mask quality scores and training-free baselines."""
