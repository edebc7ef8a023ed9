"""The sheet's data set staged for the kernels: read from a source folder or generated, checked,
written once per fingerprint into the cache (staging.py), and the IDX format (idx.py)."""
