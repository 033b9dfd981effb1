"""OpenAI emulator: an in-memory test double of OpenAI's files, fine-tuning and chat endpoints.

It speaks OpenAI's wire format (paths, objects, errors, pagination, headers) so the official SDK
and ftq's provider code can be exercised end to end. It never trains anything: job progress,
losses, checkpoints and model answers are deterministic inventions computed from the clock.
"""
