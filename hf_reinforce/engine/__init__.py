"""The pass engine: the pass object, its render workers, the in-process and folder runs, ``extend`` and ``estimate``."""
