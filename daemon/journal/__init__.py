"""What lasts across a restart: every task's state and every uploaded link, in SQLite with group commits,
and checkpoints that never hold up a commit.

Holds: ``journal`` (``Journal``: tasks, their passing states, replay at start), ``rows`` (the tables, and a task
as a row, written and read back: a damaged row never stops a start), ``commits`` (group commit),
``checkpoints`` (WAL checkpoints on a thread of their own), ``history`` (uploaded links, dedup's lookup).
May import: core, errors.
Used by: engine, intake (presigned uploads confirmed into the history), the application layer and the
composition root.
"""
