"""Persistence: SQLAlchemy models and repositories. SQLite by default, PostgreSQL for several replicas.

Code above this package uses repositories, never sessions.
"""
