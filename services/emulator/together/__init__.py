"""Together AI's fine-tuning API in the emulator (a test double): everything under `/together`.

The SDK's `Together(api_key=..., base_url=ROOT + "/together")` reaches `/together/v1/files`,
`/together/v1/fine-tunes`, `/together/v1/chat/completions`; jobs share the emulator's clock,
faults, request log and `/_emulator` controls with the OpenAI routes. See README.md.
"""
