"""drtool: rebuild a K3s cluster run by Flux from Git, as code, with a timed report."""

__version__ = "0.1.0"
