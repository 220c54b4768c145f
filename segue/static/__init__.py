"""Web assets shipped inside the package, and the helpers that serve them.

``vendor/`` holds pinned third-party files (see ``vendor/VERSIONS.md``), so pages such as
``/docs`` work offline and behind a firewall: nothing is loaded from a CDN.
"""
