"""Result rows, writers (CSV, Weights & Biases) and summaries over seeds."""
