"""Downloadable artifacts of local fine-tuning jobs."""

from fastapi import APIRouter

router = APIRouter()
