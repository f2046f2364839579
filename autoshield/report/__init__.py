"""Layer 7, report: tables, plots and the Markdown report, read back from the studies alone."""
