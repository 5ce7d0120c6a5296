"""Install the Parker kernfs emulation on a test guest, and boot it (deploy.yml's second task).

  python3 install.py SETTINGS        # SETTINGS: one JSON object, deploy.yml's parker_emu_* variables

deploy.yml copies the emulator's modules to the guest as one JSON bundle ({name: source},
at parker_emu_bundle) and runs this script with the settings; each Ansible task costs a
round trip of 6-15 s on a TCG guest, so everything else happens here, idempotently:

* unpack the bundle into parker_emu_dir;
* divert /sbin/kexec to /sbin/kexec.distrib and put the recorder's wrapper in its place;
* write the emulation's config, /sbin/mount.parker and the two systemd units
  (daemon-reload when a unit changed), and enable parker-emu-boot.service;
* unmount the kernfs for new code, config or units (partitions persist), or when
  parker_emu_mounted is false; a changed config is a new emulated boot (boot.py reboot);
* the emulated boot of this guest boot (boot.py boot), and the mount when parker_emu_mounted.

What a completed run applied is stamped in parker_emu_dir/installed.json, so a run that
failed half-way is finished by the next one. It prints one JSON line,
{"changed": bool, "changes": [...]} (plus "failed" and "msg" when it exits 1).
Standard library only: the guests have python3 and nothing else to rely on.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys
import traceback

KEXEC = '/sbin/kexec'
KEXEC_DISTRIB = '/sbin/kexec.distrib'
MOUNT_HELPER = '/sbin/mount.parker'
UNIT_DIR = '/etc/systemd/system'
BOOT_UNIT = 'parker-emu-boot.service'
STATE_DIR = '/run/parker-emu'
STAMP = 'installed.json'
# deploy.yml passes every one of these; no second set of defaults here.
SETTINGS = {
    'parker_emu_root': str,
    'parker_emu_dir': str,
    'parker_emu_boot_delay': float,
    'parker_emu_online_cap': float,
    'parker_emu_cma': str,
    'parker_emu_cma_failed_nodes': list,
    'parker_emu_debugfs': bool,
    'parker_emu_mounted': bool,
    'parker_emu_config': str,
    'parker_emu_bundle': str,
}


class InstallError(Exception):
    pass


def parse_settings(raw):
    """The settings object, checked and normalized (numbers as deploy.yml's float/int filters make them)."""
    if not isinstance(raw, dict):
        raise InstallError('settings: a JSON object expected')
    missing = sorted(set(SETTINGS) - set(raw))
    unknown = sorted(set(raw) - set(SETTINGS))
    if missing or unknown:
        raise InstallError('settings: missing %s, unknown %s' % (missing, unknown))
    out = {}
    for key, kind in SETTINGS.items():
        value = raw[key]
        if kind is bool:
            if not isinstance(value, bool):  # "false" would be true; deploy.yml applies | bool
                raise InstallError('settings: %s must be true or false, not %r' % (key, value))
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InstallError('settings: %s must be a number, not %r' % (key, value))
            value = float(value)
        elif kind is list:
            if not isinstance(value, list) or any(isinstance(n, bool) or not isinstance(n, int) for n in value):
                raise InstallError('settings: %s must be a list of node numbers, not %r' % (key, value))
        elif not isinstance(value, str) or not value:
            raise InstallError('settings: %s must be a non-empty string, not %r' % (key, value))
        out[key] = value
    for key in ('parker_emu_root', 'parker_emu_dir', 'parker_emu_config', 'parker_emu_bundle'):
        if not out[key].startswith('/'):
            raise InstallError('settings: %s must be an absolute path, not %r' % (key, out[key]))
    return out


# -- what the guest should hold -------------------------------------------------------------------
def render_config(s):
    """The emulation's config (boot.py and the FUSE daemon read it), laid out as Ansible's to_nice_json did."""
    config = {
        'root': s['parker_emu_root'],
        'parker_cma': s['parker_emu_cma'],
        'cma_failed_nodes': s['parker_emu_cma_failed_nodes'],
        'boot_delay': s['parker_emu_boot_delay'],
        'online_cap': s['parker_emu_online_cap'],
        'debugfs': s['parker_emu_debugfs'],
        'state_dir': STATE_DIR,
        'kexec_record': STATE_DIR + '/kexec-slot.json',
        'log': STATE_DIR + '/instances.log',
    }
    return json.dumps(config, indent=4, sort_keys=True, separators=(',', ': ')) + '\n'


def render_files(s):
    """[(path, content, mode, kind)] besides the code; kind says what a change to it calls for."""
    code, config = s['parker_emu_dir'], s['parker_emu_config']
    boot = '/usr/bin/python3 %s/boot.py --config %s' % (code, config)
    return [
        (KEXEC, '#!/bin/sh\n'
                '# parker-emu: run kexec-tools (%s) and record what the normal slot holds\n'
                'exec /usr/bin/python3 %s/kexec_recorder.py "$@"\n' % (KEXEC_DISTRIB, code), 0o755, 'kexec'),
        (config, render_config(s), 0o644, 'config'),
        (MOUNT_HELPER, '#!/bin/sh\n'
                       '# parker-emu: mount(8) runs this for `mount -t parker none DIR`;'
                       ' it starts parker-emu@DIR.service\n'
                       'exec %s mount "$@"\n' % boot, 0o755, 'mount'),
        (UNIT_DIR + '/' + BOOT_UNIT,
         '[Unit]\n'
         'Description=Emulated Parker Boot Kernel boot: CMA areas, kernel log lines (tests/parker_emu)\n'
         'After=sys-kernel-debug.mount local-fs.target\n'
         '[Service]\n'
         'Type=oneshot\n'
         'RemainAfterExit=yes\n'
         'ExecStart=%s boot\n'
         '[Install]\n'
         'WantedBy=multi-user.target\n' % boot, 0o644, 'units'),
        (UNIT_DIR + '/parker-emu@.service',
         '[Unit]\n'
         'Description=Parker kernfs emulation mounted at %%f (tests/parker_emu; started by mount.parker)\n'
         'After=%s\n'
         '[Service]\n'
         'ExecStart=/usr/bin/python3 %s/parkerfs.py %%f --foreground --config %s\n'
         'ExecStopPost=-/bin/fusermount -u %%f\n'
         '# disk holders (names change on return) outlive a daemon that exits at umount\n'
         'KillMode=process\n' % (BOOT_UNIT, code, config), 0o644, 'units'),
    ]


def check_bundle(bundle):
    """{name: source} of plain module names: nothing may land outside parker_emu_dir."""
    if not isinstance(bundle, dict) or not bundle:
        raise InstallError('bundle: a non-empty JSON object {name: source} expected')
    for name, source in bundle.items():
        if '/' in name or not name.endswith('.py') or name.startswith('.') or not isinstance(source, str):
            raise InstallError('bundle: %r is not a module name with its source' % name)
    return bundle


def digest(items):
    """A hash of [(name, text)], order-independent."""
    return hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest()


def applied_now(s, bundle):
    """The hashes a completed run stamps: what the daemon runs and what the emulated boot used."""
    files = render_files(s)
    return {
        'code': digest(bundle.items()),
        'config': digest([(path, text) for path, text, _mode, kind in files if kind == 'config']),
        'units': digest([(path, text) for path, text, _mode, kind in files if kind == 'units']),
    }


def pending(written, stamp, current):
    """The kinds (code, config, units) written now, or not yet applied by a completed run."""
    stamp = stamp if isinstance(stamp, dict) else {}
    return set(kind for kind in current if kind in written or stamp.get(kind) != current[kind])


def decide(todo, mounted, want_mounted):
    """What to do after the files are in place. A running daemon keeps its old code, config and unit;
    a new config is a new emulated boot, which is refused while mounted."""
    unmount = mounted and (bool(todo & {'code', 'config', 'units'}) or not want_mounted)
    return {
        'daemon_reload': 'units' in todo,
        'unmount': unmount,
        'reboot': 'config' in todo,
        'mount': want_mounted and (not mounted or unmount),
    }


# -- the guest ------------------------------------------------------------------------------------
class Guest:
    """The side effects; the unit tests put a fake in its place, with sysroot a temporary directory."""

    def __init__(self, sysroot='/'):
        self.sysroot = sysroot
        self._boot = None

    def path(self, path):
        return os.path.join(self.sysroot, path.lstrip('/'))

    def run(self, argv):
        try:
            return subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True, timeout=180).stdout
        except subprocess.CalledProcessError as exc:
            raise InstallError('%s: exit %d: %s' % (' '.join(argv), exc.returncode, exc.stderr.strip())) from exc

    def unit_enabled(self, unit):
        # is-enabled exits 1 for "disabled"; only its word matters here
        proc = subprocess.run(['systemctl', 'is-enabled', unit], check=False, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
        return proc.stdout.strip() == 'enabled'

    def emulation(self, code_dir):
        """boot.py as just unpacked, imported rather than run: each python3 start is slow on a busy TCG guest."""
        if self._boot is None:
            sys.path.insert(0, code_dir)
            import boot  # pylint: disable=import-outside-toplevel,import-error
            self._boot = boot
        return self._boot

    def load_config(self, s):
        return self.emulation(s['parker_emu_dir']).load_config(s['parker_emu_config'])

    def is_mounted(self, s):
        return self.emulation(s['parker_emu_dir']).is_mounted(os.path.abspath(s['parker_emu_root']))

    def unmount(self, s):
        emu = self.emulation(s['parker_emu_dir'])
        if emu.unmount(self.load_config(s)) != 0:
            raise InstallError('umount %s: the FUSE daemon did not exit' % s['parker_emu_root'])

    def boot(self, s, force):
        """The emulated boot; True when it booted now (a new layout with force, else the first of this guest boot)."""
        emu = self.emulation(s['parker_emu_dir'])
        config = self.load_config(s)
        if not force and emu.booted(config):
            return False
        emu.boot(config, force=force)
        return True


def write_file(path, content, mode):
    """path holds content with mode afterwards; True if that took a write or a chmod."""
    data = content.encode('utf-8')
    try:
        with open(path, 'rb') as handle:
            same = handle.read() == data
        if same and not os.path.islink(path):
            if stat.S_IMODE(os.stat(path).st_mode) == mode:
                return False
            os.chmod(path, mode)
            return True
    except FileNotFoundError:
        pass
    tmp = path + '.parker-emu-new'
    with open(tmp, 'wb') as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)  # a reader (mount(8), a running kexec) never sees half a file
    return True


def ensure_dir(path, mode=0o755):
    if os.path.isdir(path):
        if stat.S_IMODE(os.stat(path).st_mode) == mode:
            return False
        os.chmod(path, mode)
        return True
    os.makedirs(path, mode)
    os.chmod(path, mode)  # makedirs' mode is masked by the umask
    return True


def read_json(path):
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def install(s, guest, changes):
    """Brings the guest to the settings; appends what it changed to changes."""
    with open(guest.path(s['parker_emu_bundle']), encoding='utf-8') as handle:
        bundle = check_bundle(json.load(handle))
    code_dir = guest.path(s['parker_emu_dir'])
    written = set()
    if ensure_dir(code_dir):
        changes.append('created ' + s['parker_emu_dir'])
    for name in sorted(bundle):
        if write_file(os.path.join(code_dir, name), bundle[name], 0o644):
            written.add('code')
            changes.append('wrote %s/%s' % (s['parker_emu_dir'], name))

    # dpkg-divert --rename moves the real kexec aside, before the wrapper takes its path
    if not os.path.lexists(guest.path(KEXEC_DISTRIB)):
        guest.run(['dpkg-divert', '--local', '--rename', '--divert', KEXEC_DISTRIB, '--add', KEXEC])
        changes.append('diverted %s to %s' % (KEXEC, KEXEC_DISTRIB))
    if ensure_dir(guest.path(os.path.dirname(s['parker_emu_config']))):
        changes.append('created ' + os.path.dirname(s['parker_emu_config']))
    for path, content, mode, kind in render_files(s):
        if write_file(guest.path(path), content, mode):
            written.add(kind)
            changes.append('wrote ' + path)

    stamp_path = os.path.join(code_dir, STAMP)
    current = applied_now(s, bundle)
    todo = pending(written, read_json(stamp_path), current)
    plan = decide(todo, guest.is_mounted(s), s['parker_emu_mounted'])
    # Enabling only links the unit for the next guest boot; each reload costs seconds on a busy guest.
    if not guest.unit_enabled(BOOT_UNIT):
        guest.run(['systemctl', 'enable', '--no-reload', BOOT_UNIT])
        changes.append('enabled ' + BOOT_UNIT)
    if plan['daemon_reload']:
        guest.run(['systemctl', 'daemon-reload'])
        changes.append('systemctl daemon-reload')
    if plan['unmount']:
        guest.unmount(s)
        changes.append('unmounted %s (%s)' % (s['parker_emu_root'], ', '.join(sorted(todo)) or 'not wanted'))
    if plan['reboot'] and guest.is_mounted(s):
        raise InstallError('%s is still mounted: no new emulated boot' % s['parker_emu_root'])
    if guest.boot(s, force=plan['reboot']):
        changes.append('new emulated boot (config changed)' if plan['reboot'] else 'emulated boot')
    if plan['mount']:
        guest.run(['mount', '-t', 'parker', 'none', s['parker_emu_root']])
        changes.append('mounted ' + s['parker_emu_root'])
    # Last: a run that failed before here leaves the old stamp, and the next run redoes the steps.
    write_file(stamp_path, json.dumps(current, indent=1, sort_keys=True) + '\n', 0o644)


def main(argv=None, guest=None, out=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if out is None:
        # stdout carries the one JSON line deploy.yml parses: anything else a step prints goes to stderr
        out = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    changes = []
    result = {'changed': False, 'changes': changes}
    status = 0
    try:
        if len(argv) != 1:
            raise InstallError('usage: install.py SETTINGS_JSON')
        try:
            raw = json.loads(argv[0])
        except ValueError as exc:
            raise InstallError('settings: not JSON: %s' % exc) from exc
        install(parse_settings(raw), guest or Guest(), changes)
    except Exception as exc:  # pylint: disable=broad-except
        # Still one JSON line, so changed_when can read what was changed before the failure.
        if not isinstance(exc, InstallError):
            traceback.print_exc()
        result.update(failed=True, msg=str(exc))
        print('install.py: %s' % exc, file=sys.stderr)
        status = 1
    result['changed'] = bool(changes)
    out.write(json.dumps(result, sort_keys=True) + '\n')
    out.flush()
    return status


if __name__ == '__main__':
    sys.exit(main())
