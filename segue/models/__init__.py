"""Models: the package format, flavors, signatures and loading."""
