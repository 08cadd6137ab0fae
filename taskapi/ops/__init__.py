"""Running the service: logs, metrics, readiness, the process's lifecycle, housekeeping."""
