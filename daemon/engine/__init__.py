"""The transfer engine: owns every task, decides what runs, sends files through providers, retries, and is
the only writer of task state.

Holds: ``engine`` (``Engine``: dispatch, pause, cancel, shutdown), ``worker`` (one upload attempt: open, digest,
send), ``processing`` (a job's edited copy: location stripped, converted), ``task_list`` (the live list and its
lookups), ``index`` (per-batch counts), ``changes`` (the change log behind ``since``), ``cleanup`` (aborting
what a cancelled or failed upload left in the store).
May import: core, errors, files, images, journal, providers, settings.
Used by: the application layer and the composition root; no face imports it.
"""
