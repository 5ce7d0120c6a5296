"""Helpers shared by the unit tests (a unique module name: conftest.py is not importable by name
when pytest collects tests/unit and tests/fleet together)."""
import importlib.util
import os
import sys
import types


class FakeModule:
    """Just enough of AnsibleModule for execute(): params, check_mode, run_command, exits."""

    def __init__(self, params, check_mode=False, commands=None):
        self.params = params
        self.check_mode = check_mode
        self.commands = commands if commands is not None else {}
        self.ran = []
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)

    def run_command(self, argv, environ_update=None, handle_exceptions=True):
        self.ran.append(list(argv))
        for prefix, reply in self.commands.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return reply(argv) if callable(reply) else reply
        return 0, '', ''

    def exit_json(self, **result):
        result['warnings'] = self.warnings
        raise ModuleExit(result)

    def fail_json(self, **result):
        result['failed'] = True
        result['warnings'] = self.warnings
        raise ModuleExit(result)


class ModuleExit(Exception):
    def __init__(self, result):
        self.result = result
        super(ModuleExit, self).__init__(result)


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
