"""Background work each ``serve`` process runs beside its requests (started and stopped with the app's lifespan)."""
