"""The distributed training loop and what it writes: strategies, optimizer, checkpoints, summaries, export."""
