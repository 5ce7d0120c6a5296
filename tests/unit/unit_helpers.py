"""Helpers shared by the unit tests (a unique module name: conftest.py is not importable by name
when pytest collects tests/unit and tests/fleet together)."""
import importlib.util
import os
import subprocess
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


def fake_update_grub(root, calls, entries, header=None, run_grub_d=False):
    """An update-grub for the tree at ``root``, as grub-mkconfig does it: /etc/default/grub and its drop-ins are
    sourced by a real /bin/sh, then grub.cfg is ``header`` (a file under root, standing for 00_header's output),
    ``entries`` (a printf format given GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT) and, with ``run_grub_d``,
    what each executable /etc/grub.d script prints. Returns the runner for it; each call is appended to ``calls``."""
    script = ('. "$1/etc/default/grub"; for f in "$1"/etc/default/grub.d/*.cfg; do [ -e "$f" ] && . "$f"; done; '
              '{ %sprintf "%s" "$GRUB_CMDLINE_LINUX" "$GRUB_CMDLINE_LINUX_DEFAULT"; %s} > "$1/boot/grub/grub.cfg"'
              % ('cat "$1%s"; ' % header if header else '', entries,
                 'for s in "$1"/etc/grub.d/*; do if [ -x "$s" ]; then "$s"; fi; done; ' if run_grub_d else ''))

    def update(argv):
        calls.append(argv)
        # stdout=/stderr=PIPE and universal_newlines: module tests run on Python 3.6 too (no capture_output, text)
        proc = subprocess.run(['/bin/sh', '-c', script, 'sh', root], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    return update


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
