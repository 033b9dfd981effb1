"""Hyperparameters of local runs: "auto" as OpenAI resolves it, LoRA defaults from settings."""

from __future__ import annotations

from ftq.shared.providers.local import hyper


def test_auto_values_follow_openai_and_the_documented_base_rate():
    resolved = hyper.resolve({}, n_examples=20)
    assert resolved.n_epochs == 5  # 20 examples x 5 epochs reach OpenAI's 100 minimum
    assert resolved.batch_size == 1
    assert resolved.learning_rate == 2e-4 and resolved.multiplier == 1.0
    assert (resolved.rank, resolved.alpha, resolved.targets) == (16, 32, ["all-linear"])
    big = hyper.resolve({"learning_rate_multiplier": 2.5}, n_examples=50_000)
    assert big.n_epochs == 1 and big.batch_size == 100
    assert big.learning_rate == 5e-4


def test_explicit_values_win():
    method = {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": 2,
                "batch_size": 8,
                "beta": 0.3,
                "lora_rank": 4,
                "lora_alpha": 8,
                "lora_dropout": 0.0,
                "lora_target_modules": ["q_proj", "v_proj"],
            }
        },
    }
    resolved = hyper.resolve(hyper.method_params(method), n_examples=500)
    assert (resolved.n_epochs, resolved.batch_size, resolved.beta) == (2, 8, 0.3)
    assert (resolved.rank, resolved.alpha, resolved.dropout) == (4, 8, 0.0)
    assert resolved.targets == ["q_proj", "v_proj"]
    assert "LoRA rank=4" in resolved.describe()
