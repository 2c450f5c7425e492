"""The core layer: what every other layer of salbench shares, and nothing else.

Layers, bottom to top (an arrow is "may import"; the import-linter contracts in
``pyproject.toml`` enforce them in the test command):

    core  <-  explainers  <-  metrics  <-  attacks  <-  harness (data, models, recipes, suite, runner, results, CLI)

- :mod:`salbench.core.registry`: the one registry class behind every kind of component;
- :mod:`salbench.core.validation`: input checks at the public entry points;
- :mod:`salbench.core.hashing`: canonical JSON, content digests, package versions;
- :mod:`salbench.core.text`: the text tensor (token ids and word positions) and its vocabulary;
- :mod:`salbench.core.optional`: optional dependencies, imported on demand with an install hint;
- :mod:`salbench.core.minilm`: the offline MiniLM encoder shared by text metrics and attacks.
"""
