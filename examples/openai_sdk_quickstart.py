"""OpenAI's fine-tuning guide, step by step, with the official SDK: only `base_url` and `api_key`
point at ftq instead of OpenAI.

    export FTQ_BASE_URL=http://localhost:8000/v1 FTQ_API_KEY=ftq_sk_...   # a team key
    python examples/openai_sdk_quickstart.py
    FTQ_MODEL=local:SmolLM2-135M-Instruct python examples/openai_sdk_quickstart.py  # train here

The model picks the provider: a plain OpenAI model goes to ftq's default provider (the emulator
on the embedded default), `provider:model` names one (`local:` trains on ftq's own workers).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from openai import OpenAI

client = OpenAI(base_url=os.environ["FTQ_BASE_URL"], api_key=os.environ["FTQ_API_KEY"])
MODEL = os.environ.get("FTQ_MODEL", "gpt-4o-mini-2024-07-18")
SYSTEM = "You convert kilometres to metres. Answer in the form '<km> km = <m> m.'"
FINISHED = {"succeeded", "failed", "cancelled"}


def example(km: int) -> dict[str, object]:
    """One chat example of the task."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"How many metres is {km} kilometres?"},
            {"role": "assistant", "content": f"{km} km = {km * 1000} m."},
        ]
    }


def write_jsonl(path: Path, kms: range) -> Path:
    """A JSONL file of examples."""
    path.write_text("".join(json.dumps(example(km)) + "\n" for km in kms))
    return path


# 1. Prepare and upload the training and validation files.
folder = Path(tempfile.mkdtemp(prefix="ftq-quickstart-"))
training = client.files.create(
    file=write_jsonl(folder / "train.jsonl", range(1, 25)).open("rb"), purpose="fine-tune"
)
validation = client.files.create(
    file=write_jsonl(folder / "valid.jsonl", range(100, 110)).open("rb"), purpose="fine-tune"
)
print(f"uploaded {training.id} ({training.bytes} bytes) and {validation.id}")

# 2. Create the fine-tuning job.
job = client.fine_tuning.jobs.create(
    model=MODEL,
    training_file=training.id,
    validation_file=validation.id,
    hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2},
    suffix="metres",
)
print(f"created {job.id} on {MODEL}: {job.status}")

# 3. Follow its status until it finishes.
status = job.status
while job.status not in FINISHED:
    time.sleep(1)
    job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != status:
        status = job.status
        print(f"  status {status}")
if job.status != "succeeded":
    raise SystemExit(f"job {job.id} {job.status}: {job.error.message if job.error else ''}")
print(f"fine-tuned model: {job.fine_tuned_model}")

# 4. Read its metric events (oldest first here; the API lists newest first).
metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
for event in reversed(metrics):
    data = event.data or {}
    print(f"  step {data.get('step')}: train loss {data.get('train_loss')}")

# 5. List its checkpoints: each one is a model you can call.
for checkpoint in client.fine_tuning.jobs.checkpoints.list(job.id):
    print(f"  checkpoint {checkpoint.fine_tuned_model_checkpoint} at step {checkpoint.step_number}")

# 6. Ask the tuned model.
answer = client.chat.completions.create(
    model=job.fine_tuned_model or MODEL,
    messages=[
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "How many metres is 7 kilometres?"},
    ],
)
print(f"the tuned model says: {answer.choices[0].message.content}")
