"""The local demo's task: route a customer support ticket to one of four queues.

Written here from seeded templates (no file from outside): each ticket mentions its problem in
everyday words, and the answer is the queue's name alone. A small base model knows what the
tickets are about but answers in sentences, hedges or picks a near-synonym; a short LoRA run
teaches it the four names and the exact one-word format, which the `exact` grader checks.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

QUEUES = ("billing", "bug", "account", "shipping")
SYSTEM = "Route the support ticket to a queue: billing, bug, account or shipping."
PROBLEMS = {
    "billing": (
        "I was charged twice for my {plan} subscription this month",
        "my invoice shows a {amount} fee I never agreed to",
        "the refund for my {plan} plan has not arrived after {days} days",
        "my card was declined when renewing the {plan} plan, but the bank says it is fine",
        "why did the price of my {plan} plan go up by {amount}",
        "I need a receipt with our VAT number for the {amount} payment",
    ),
    "bug": (
        "the app crashes every time I open the {screen} screen",
        "the {screen} page shows a blank white box since the last update",
        "exporting from the {screen} view gives an error 500",
        "the {screen} button does nothing when I click it in {browser}",
        "search on the {screen} screen returns results from last year only",
        "the {screen} page freezes {browser} after a few seconds",
    ),
    "account": (
        "I cannot log in: the password reset email never arrives",
        "please change the email address on my account to my work one",
        "my account is locked after too many login attempts",
        "how do I add a colleague to our team account as an admin",
        "I want to delete my account and all my data",
        "two-factor codes from my phone are rejected when I sign in",
    ),
    "shipping": (
        "my order #{order} still has not arrived after {days} days",
        "the parcel for order #{order} was delivered to the wrong address",
        "tracking for order #{order} has not moved since {day}",
        "order #{order} arrived damaged, the box was crushed",
        "can I change the delivery address of order #{order} before it ships",
        "only half of order #{order} was in the box",
    ),
}
OPENERS = ("Hi,", "Hello team,", "Hey,", "Good morning,", "", "Urgent:")
CLOSERS = ("Thanks.", "Please help.", "Regards, Sam", "Can you look into it?", "", "Thank you!")
FILL = {
    "plan": ("Pro", "Team", "Basic", "annual", "monthly"),
    "amount": ("$12", "$49.99", "€20", "$5", "£30"),
    "days": ("5", "10", "14", "three", "eight"),
    "screen": ("reports", "settings", "dashboard", "calendar", "invoices", "profile"),
    "browser": ("Firefox", "Chrome", "Safari", "Edge"),
    "order": ("48213", "99120", "10457", "77301", "66020"),
    "day": ("Monday", "last week", "the 3rd", "Friday"),
}


def ticket(rng: random.Random) -> dict[str, Any]:
    """One ticket in chat form, its queue as the assistant's whole answer."""
    queue = rng.choice(QUEUES)
    problem = rng.choice(PROBLEMS[queue]).format(**{k: rng.choice(v) for k, v in FILL.items()})
    text = " ".join(
        part for part in (rng.choice(OPENERS), problem + ".", rng.choice(CLOSERS)) if part
    )
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
            {"role": "assistant", "content": queue},
        ]
    }


def write_dataset(path: Path, n: int, seed: int = 8) -> Path:
    """`n` seeded tickets as chat JSONL."""
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(ticket(rng)) + "\n" for _ in range(n)), encoding="utf-8")
    return path
