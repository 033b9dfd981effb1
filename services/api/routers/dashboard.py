"""The read-only team dashboard and job charts."""

from fastapi import APIRouter

router = APIRouter()
