"""OpenAI's own fine-tuning webhooks: verify, then sync the job now."""

from fastapi import APIRouter

router = APIRouter()
