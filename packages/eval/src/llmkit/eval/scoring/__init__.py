"""Answer extraction, per-sample scorers, and the pass@k estimator."""
