"""Remote mode: the store interfaces implemented over ``segue server``'s REST API.

With ``SEGUE_TRACKING_URI=http://host:port`` and ``SEGUE_TOKEN``, the SDK and the CLI reach
the metadata and artifact stores only through the server.
"""
