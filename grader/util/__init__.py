"""Helpers with no grading logic: files written whole, the cache folder, folder clean-up, file locks,
students' text made safe, a notebook file read with a message saying what is wrong."""
