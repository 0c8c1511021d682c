"""From results to a decision: the chosen row, statistics, warnings, plots, report.md and its HTML page."""
