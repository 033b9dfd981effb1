"""The apps a person runs: the `ftq` console script, the team CLI, the demo, the REST client."""
