"""The join links' pages and the OAuth2 callback."""
