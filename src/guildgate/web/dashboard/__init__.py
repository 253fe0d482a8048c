"""The operator's dashboard: login, records, links, API keys, and its charts."""
