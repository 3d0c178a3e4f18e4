"""Iceberg tables: the run's output committed to one, or the input read from one."""
