"""The team CLI: `ftq login`, `ftq datasets …`, `ftq jobs …`, `ftq evals …` over the REST API."""
