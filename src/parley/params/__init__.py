"""Adaptive generation parameters: a bandit per profile and complexity bucket that learns from ratings."""
