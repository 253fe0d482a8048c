"""What runs beside the requests in every ``serve`` process: the grant sweep, reminders and periodic sync
(``grants.py``). Lease-based, so any process on any host may run them at once."""
