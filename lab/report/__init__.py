"""Reports made from a results file: the terminal table, HTML, charts and alerts."""
