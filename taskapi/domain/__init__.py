"""The domain: TaskAPI's rules and queries, as plain functions over a connection. No HTTP."""
