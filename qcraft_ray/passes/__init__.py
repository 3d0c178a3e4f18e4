"""Passes over committed output (the percentile filter, ``qcraft score``): they read the
files of the accepted manifests and replace them by the commit protocol of
:func:`qcraft_ray.ledger.manifests.replace_files`."""
