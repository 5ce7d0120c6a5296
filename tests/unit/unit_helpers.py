"""Helpers shared by the unit tests (a unique module name: conftest.py is not importable by name
when pytest collects tests/unit and tests/fleet together)."""
import importlib.util
import os
import sys
import types


def snapshot(root):
    """Every file's content under root: a check-mode run must leave it identical."""
    state = {}
    for top, dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                with open(path, 'rb') as handle:
                    state[path] = handle.read()
        for name in dirs:
            path = os.path.join(top, name)
            if os.path.islink(path):
                state[path] = os.readlink(path)
    return state


class _FuseOSError(OSError):
    def __init__(self, code):
        super().__init__(code, os.strerror(code))


def import_parkerfs(monkeypatch):
    """Import the adapter; without fusepy, stand in a stub module (no mount is made)."""
    if importlib.util.find_spec('fuse') is None and importlib.util.find_spec('fusepy') is None:
        stub = types.ModuleType('fuse')
        stub.FUSE = None
        stub.Operations = object
        stub.FuseOSError = _FuseOSError
        monkeypatch.setitem(sys.modules, 'fuse', stub)
    monkeypatch.delitem(sys.modules, 'parker_emu.parkerfs', raising=False)
    from parker_emu import parkerfs  # pylint: disable=import-outside-toplevel
    return parkerfs
