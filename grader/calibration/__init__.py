"""Where calibrations are kept: the sheet's shipped file and the cache (no kernels, no pipeline;
the run that makes one is engine/calibrate.py)."""
