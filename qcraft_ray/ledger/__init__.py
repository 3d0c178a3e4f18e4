"""The run's exactly-once bookkeeping: work units, counts, manifests, run state, the
lease, the fingerprint and reconciliation. Storage goes through :mod:`qcraft_ray.store`;
the run's last act, which uses all of it, is :mod:`qcraft_ray.finalise`."""
