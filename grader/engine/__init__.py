"""What runs the pipeline over many notebooks: the batch (workers, cache, shards, progress), the
workers' executors, the import pre-flight of a batch, and the calibration (the sheet's solution
run to find the accuracy range and time limits)."""
