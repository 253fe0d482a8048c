"""The domain: outcomes, errors, parsing and the join pipeline. No web, SQL or HTTP client here."""
