"""The salbench harness: registry, data sets, models and recipes, grid runner, leaderboards, CLI.

Kept light on purpose: the plug-in packages (explainers, metrics, attacks) import
``salbench.core.registry`` and nothing else from here, so this module imports nothing.
"""
