"""Evaluations: score models on a dataset, side by side."""

from fastapi import APIRouter

router = APIRouter()
