"""TaskAPI: a spec-first task-management REST API."""

__version__ = "1.0.0"
