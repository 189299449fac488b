"""Batch-system adapters: pure translations between options, argv and output."""
