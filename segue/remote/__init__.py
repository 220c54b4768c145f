"""Remote mode: the store interfaces implemented over ``segue server``'s REST API.

With ``SEGUE_TRACKING_URI=http://host:port`` and ``SEGUE_TOKEN``, the SDK and the CLI reach
the metadata and artifact stores only through the server.
"""

import fsspec

# The artifact store of remote mode is "segue+" + SEGUE_TRACKING_URI. Installing Segue declares
# these protocols through fsspec's entry points; naming the class here too (a string: nothing
# is imported until such a URL is opened) keeps them working from a source checkout whose
# stale egg-info hides those entry points.
for _protocol in ("segue+http", "segue+https"):
    fsspec.register_implementation(_protocol, "segue.remote.fs.SegueFileSystem", clobber=True)
