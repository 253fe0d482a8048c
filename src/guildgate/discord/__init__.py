"""The adapter to Discord's REST API."""
