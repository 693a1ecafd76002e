"""Storage: the data format, the run record, the folder's files and names, writing shards and reading them back,
resume records and locks. Imports only ``augment``, ``errors`` and ``validation`` from the rest of the package:
training code reads what is stored without loading the pass or the teachers."""
