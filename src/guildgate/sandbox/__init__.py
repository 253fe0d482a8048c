"""A faithful local stand-in for the Discord endpoints guildgate uses (see docs/sandbox.md)."""
