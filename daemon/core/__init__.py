"""The vocabulary every layer speaks: the settings model, task states and their JSON views, typed events,
the retry policy, object-key templates and the per-client rate limits.

Holds: ``config`` (the typed settings, ``SettingsBox``), ``tasks`` (``Task`` and its named states), ``views``
(a task's JSON, summaries, progress), ``events`` (typed engine events and the bus that carries them), ``retry``
(backoff with jitter), ``keys`` (``key_template`` placeholders), ``limits`` (calls and files per client),
``heap`` (garbage collection and glibc's heaps tuned for a daemon, memory handed back after a large clear),
``threads`` (thread pools started whole at start, so their threads do not keep a batch's memory, and
``Workers``, threads whose results reach the loop in batches).
May import: errors.
Used by: every other room and the application layer; nothing here does I/O beyond the clock.
"""
