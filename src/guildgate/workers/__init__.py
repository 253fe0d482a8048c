"""What runs beside the requests in every ``serve`` process, started and stopped with the app's lifespan: the grant
sweep, reminders and periodic sync (``grants.py``) and the webhook sender (``webhooks.py``). Lease-based, so any
process on any host may run them at once."""
