"""Local LoRA training tasks (queue gpu)."""
