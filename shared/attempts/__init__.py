"""Delivery counters of Celery task messages, so a poison message cannot loop forever."""
