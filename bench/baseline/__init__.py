"""Frozen copies of fusion/{tcn,attention,head,model}.py before the CPU speed-ups (issue 11), the
baseline that bench/bench_train_step.py measures the current model against (same state dict)."""
