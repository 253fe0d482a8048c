"""The JSON API: the join route, its body, the records routes, the admin API, and their schemas."""
