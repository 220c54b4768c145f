"""``segue server``: the team server, a REST API under ``/api/v1`` over one metadata store and
one artifact store, with users, roles and tokens."""
