"""The OpenAI-compatible surface: OpenAI's wire format over ftq's datasets, jobs and providers."""
