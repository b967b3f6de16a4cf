"""Engines generate tokens. The pipeline talks to them only through `parley.engines.base.Engine`."""
