"""Storage: the engines and pools, the one place that commits, the schema and its migrations."""
