"""The operations the CLI and the web share (links, keys, records), and what a running service holds
(``runtime.Services``). Neither ``web/`` nor ``cli/`` holds this logic: they translate to and from it."""
