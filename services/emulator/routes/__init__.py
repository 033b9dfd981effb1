"""HTTP routes of the emulator (a test double of OpenAI), one module per resource."""
