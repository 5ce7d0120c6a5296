"""Test emulation of the Parker kernfs (see model.py and parkerfs.py)."""
