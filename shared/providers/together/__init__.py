"""Together AI's fine-tuning API as an ftq provider, through the official `together` SDK (3.x).

`plugin.TOGETHER` is the `ftq.providers` entry point; `provider.TogetherProvider` makes the calls;
`mapping` turns Together's statuses, events, metrics and checkpoints into ftq's shapes and ftq's
hyperparameters into Together's create arguments. The model table is in `ftq.shared.catalog`.
"""
