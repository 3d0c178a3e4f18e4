"""The run's exactly-once bookkeeping: work units, counts, manifests, run state, the
fingerprint, and the finalise step. Storage goes through :mod:`qcraft_ray.store`."""
