"""Unit tests of the Parker emulation's installer (tests/parker_emu/install.py, run by deploy.yml).

Covers the settings check, the files it renders (byte for byte what deploy.yml's tasks wrote
before), the decision of what to do (pending changes, unmount, new emulated boot, mount), and
whole runs against a FakeGuest over a temporary sysroot: a first run, a no-op second run, new
code, a new config, parker_emu_mounted, and a run that fails half-way being finished by the next.
"""
import io
import json
import os
import stat
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from parker_emu import install  # noqa: E402  pylint: disable=wrong-import-position

SETTINGS = {
    'parker_emu_root': '/run/parker',
    'parker_emu_dir': '/opt/parker-emu',
    'parker_emu_boot_delay': 2,
    'parker_emu_online_cap': 600,
    'parker_emu_cma': '4G',
    'parker_emu_cma_failed_nodes': [],
    'parker_emu_debugfs': True,
    'parker_emu_mounted': False,
    'parker_emu_config': '/etc/parker-emu/config.json',
    'parker_emu_bundle': '/opt/parker-emu.bundle.json',
}
BUNDLE = {'boot.py': 'print("boot")\n', 'model.py': 'X = 1\n', 'kexec_recorder.py': '', 'parkerfs.py': '',
          'instance.py': ''}


def settings(**changes):
    raw = dict(SETTINGS, **changes)
    return install.parse_settings(raw)


# -- settings ------------------------------------------------------------------------------------
def test_settings_normalized():
    s = settings()
    assert s['parker_emu_boot_delay'] == 2.0 and isinstance(s['parker_emu_boot_delay'], float)
    assert s['parker_emu_online_cap'] == 600.0 and isinstance(s['parker_emu_online_cap'], float)
    assert s['parker_emu_mounted'] is False and s['parker_emu_cma_failed_nodes'] == []


@pytest.mark.parametrize('key, value', [
    ('parker_emu_mounted', 'false'),        # a string would be true: deploy.yml applies | bool
    ('parker_emu_debugfs', 1),
    ('parker_emu_boot_delay', '2'),
    ('parker_emu_boot_delay', True),
    ('parker_emu_cma_failed_nodes', ['1']),
    ('parker_emu_cma_failed_nodes', 1),
    ('parker_emu_cma', ''),
    ('parker_emu_dir', 'opt/parker-emu'),
    ('parker_emu_config', 'config.json'),
])
def test_settings_refused(key, value):
    with pytest.raises(install.InstallError, match=key):
        settings(**{key: value})


def test_settings_missing_and_unknown():
    raw = dict(SETTINGS, parker_emu_extra=1)
    del raw['parker_emu_root']
    with pytest.raises(install.InstallError, match=r"missing \['parker_emu_root'\], unknown \['parker_emu_extra'\]"):
        install.parse_settings(raw)
    with pytest.raises(install.InstallError, match='JSON object'):
        install.parse_settings([])


# -- rendering -----------------------------------------------------------------------------------
def test_config_as_to_nice_json_wrote_it():
    text = install.render_config(settings(parker_emu_cma='2:1G', parker_emu_cma_failed_nodes=[1]))
    assert text == (
        '{\n'
        '    "boot_delay": 2.0,\n'
        '    "cma_failed_nodes": [\n'
        '        1\n'
        '    ],\n'
        '    "debugfs": true,\n'
        '    "kexec_record": "/run/parker-emu/kexec-slot.json",\n'
        '    "log": "/run/parker-emu/instances.log",\n'
        '    "online_cap": 600.0,\n'
        '    "parker_cma": "2:1G",\n'
        '    "root": "/run/parker",\n'
        '    "state_dir": "/run/parker-emu"\n'
        '}\n')


def test_files_rendered():
    files = dict((path, (text, mode, kind)) for path, text, mode, kind in
                 install.render_files(settings(parker_emu_dir='/srv/emu', parker_emu_config='/etc/e.json')))
    assert sorted(files) == ['/etc/e.json', '/etc/systemd/system/parker-emu-boot.service',
                             '/etc/systemd/system/parker-emu@.service', '/sbin/kexec', '/sbin/mount.parker']
    assert dict((p, (m, k)) for p, (_t, m, k) in files.items()) == {
        '/etc/e.json': (0o644, 'config'),
        '/etc/systemd/system/parker-emu-boot.service': (0o644, 'units'),
        '/etc/systemd/system/parker-emu@.service': (0o644, 'units'),
        '/sbin/kexec': (0o755, 'kexec'),
        '/sbin/mount.parker': (0o755, 'mount'),
    }
    assert files['/sbin/kexec'][0] == (
        '#!/bin/sh\n'
        '# parker-emu: run kexec-tools (/sbin/kexec.distrib) and record what the normal slot holds\n'
        'exec /usr/bin/python3 /srv/emu/kexec_recorder.py "$@"\n')
    assert files['/sbin/mount.parker'][0] == (
        '#!/bin/sh\n'
        '# parker-emu: mount(8) runs this for `mount -t parker none DIR`; it starts parker-emu@DIR.service\n'
        'exec /usr/bin/python3 /srv/emu/boot.py --config /etc/e.json mount "$@"\n')
    boot_unit = files['/etc/systemd/system/parker-emu-boot.service'][0]
    assert 'ExecStart=/usr/bin/python3 /srv/emu/boot.py --config /etc/e.json boot\n' in boot_unit
    assert boot_unit.endswith('[Install]\nWantedBy=multi-user.target\n')
    daemon_unit = files['/etc/systemd/system/parker-emu@.service'][0]
    assert 'ExecStart=/usr/bin/python3 /srv/emu/parkerfs.py %f --foreground --config /etc/e.json\n' in daemon_unit
    assert 'Description=Parker kernfs emulation mounted at %f (' in daemon_unit
    assert 'ExecStopPost=-/bin/fusermount -u %f\n' in daemon_unit and daemon_unit.endswith('KillMode=process\n')


@pytest.mark.parametrize('bundle', [{}, [], {'../boot.py': ''}, {'sub/boot.py': ''}, {'boot.txt': ''},
                                    {'.boot.py': ''}, {'boot.py': None}])
def test_bundle_refused(bundle):
    with pytest.raises(install.InstallError, match='bundle'):
        install.check_bundle(bundle)


def test_applied_hashes():
    now = install.applied_now(settings(), BUNDLE)
    assert now == install.applied_now(settings(parker_emu_mounted=True), dict(reversed(list(BUNDLE.items()))))
    other = install.applied_now(settings(parker_emu_cma='2G'), dict(BUNDLE, **{'model.py': 'X = 2\n'}))
    assert [k for k in now if now[k] != other[k]] == ['code', 'config']
    assert install.applied_now(settings(parker_emu_dir='/srv/emu'), BUNDLE)['units'] != now['units']


# -- decisions -----------------------------------------------------------------------------------
CURRENT = {'code': 'c1', 'config': 'f1', 'units': 'u1'}


@pytest.mark.parametrize('written, stamp, todo', [
    (set(), None, {'code', 'config', 'units'}),                 # never completed here
    (set(), 'garbage', {'code', 'config', 'units'}),
    (set(), CURRENT, set()),
    ({'code'}, CURRENT, {'code'}),                              # rewritten (edited on the guest): a new daemon
    ({'kexec', 'mount'}, CURRENT, set()),                       # neither needs a new daemon or boot
    (set(), dict(CURRENT, config='f0'), {'config'}),            # written by a run that failed before its boot
])
def test_pending(written, stamp, todo):
    assert install.pending(written, stamp, CURRENT) == todo


@pytest.mark.parametrize('todo, mounted, want, plan', [
    (set(), False, False, set()),
    (set(), True, True, set()),
    (set(), True, False, {'unmount'}),
    (set(), False, True, {'mount'}),
    ({'code'}, True, True, {'unmount', 'mount'}),
    ({'code'}, False, False, set()),
    ({'units'}, True, True, {'daemon_reload', 'unmount', 'mount'}),
    ({'config'}, True, True, {'unmount', 'reboot', 'mount'}),
    ({'config'}, True, False, {'unmount', 'reboot'}),
    ({'config'}, False, False, {'reboot'}),
    ({'code', 'config', 'units'}, False, True, {'daemon_reload', 'reboot', 'mount'}),
])
def test_decide(todo, mounted, want, plan):
    assert set(k for k, v in install.decide(todo, mounted, want).items() if v) == plan


# -- files on disk --------------------------------------------------------------------------------
def test_write_file(tmp_path):
    path = str(tmp_path / 'f')
    assert install.write_file(path, 'a\n', 0o755)
    assert not install.write_file(path, 'a\n', 0o755)
    os.chmod(path, 0o644)
    assert install.write_file(path, 'a\n', 0o755) and stat.S_IMODE(os.stat(path).st_mode) == 0o755
    assert install.write_file(path, 'b\n', 0o755) and open(path).read() == 'b\n'
    assert os.listdir(str(tmp_path)) == ['f']


def test_ensure_dir(tmp_path):
    path = str(tmp_path / 'a' / 'b')
    assert install.ensure_dir(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o755
    assert not install.ensure_dir(path)
    os.chmod(path, 0o700)
    assert install.ensure_dir(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o755


# -- whole runs -----------------------------------------------------------------------------------
class FakeGuest(install.Guest):
    """A guest over a temporary sysroot: commands and the emulation's boot and mounts are recorded."""

    def __init__(self, sysroot):
        super().__init__(str(sysroot))
        self.ran = []
        self.enabled = False
        self.mounted = False
        self.booted = False
        self.boots = []
        self.fail_boot = False
        for where in ('sbin', 'etc/systemd/system', 'opt'):
            os.makedirs(self.path(where))
        with open(self.path('/sbin/kexec'), 'w') as handle:
            handle.write('ELF kexec-tools')
        self.bundle(BUNDLE)

    def bundle(self, bundle):
        with open(self.path(SETTINGS['parker_emu_bundle']), 'w') as handle:
            json.dump(bundle, handle)

    def run(self, argv):
        self.ran.append(argv)
        if argv[0] == 'dpkg-divert':
            os.rename(self.path('/sbin/kexec'), self.path('/sbin/kexec.distrib'))
        elif argv[:2] == ['systemctl', 'enable']:
            self.enabled = True
        elif argv[0] == 'mount':
            assert argv == ['mount', '-t', 'parker', 'none', '/run/parker'] and not self.mounted
            self.mounted = True
        return ''

    def unit_enabled(self, unit):
        assert unit == 'parker-emu-boot.service'
        return self.enabled

    def is_mounted(self, s):
        return self.mounted

    def unmount(self, s):
        self.ran.append(['umount'])
        self.mounted = False

    def boot(self, s, force):
        if self.fail_boot:
            raise install.InstallError('boot failed')
        if self.booted and not force:
            return False
        self.booted = True
        self.boots.append(force)
        return True


def run(guest, **changes):
    """install.py's main() as deploy.yml runs it: (exit status, its JSON line)."""
    out = io.StringIO()
    status = install.main([json.dumps(dict(SETTINGS, **changes))], guest=guest, out=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    return status, json.loads(lines[0])


@pytest.fixture
def guest(tmp_path):
    return FakeGuest(tmp_path / 'root')


def test_first_run_then_nothing(guest):
    status, result = run(guest)
    assert status == 0 and result['changed'] is True
    assert guest.ran == [
        ['dpkg-divert', '--local', '--rename', '--divert', '/sbin/kexec.distrib', '--add', '/sbin/kexec'],
        ['systemctl', 'enable', '--no-reload', 'parker-emu-boot.service'],
        ['systemctl', 'daemon-reload']]
    assert guest.boots == [True] and not guest.mounted
    assert 'wrote /opt/parker-emu/boot.py' in result['changes'] and 'wrote /sbin/kexec' in result['changes']
    for name, source in BUNDLE.items():
        assert open(guest.path('/opt/parker-emu/' + name)).read() == source
    assert open(guest.path('/sbin/kexec.distrib')).read() == 'ELF kexec-tools'
    assert stat.S_IMODE(os.stat(guest.path('/sbin/kexec')).st_mode) == 0o755
    assert json.load(open(guest.path('/etc/parker-emu/config.json')))['root'] == '/run/parker'

    guest.ran = []
    assert run(guest) == (0, {'changed': False, 'changes': []})
    assert guest.ran == [] and guest.boots == [True]


def test_mounted_on_request_and_kept(guest):
    run(guest, parker_emu_mounted=True)
    assert guest.mounted and guest.ran[-1][0] == 'mount'
    guest.ran = []
    assert run(guest, parker_emu_mounted=True) == (0, {'changed': False, 'changes': []})
    assert run(guest) == (0, {'changed': True, 'changes': ['unmounted /run/parker (not wanted)']})
    assert not guest.mounted


def test_new_code_is_a_new_daemon(guest):
    run(guest, parker_emu_mounted=True)
    guest.ran = []
    guest.bundle(dict(BUNDLE, **{'model.py': 'X = 2\n'}))
    status, result = run(guest, parker_emu_mounted=True)
    assert status == 0
    assert result['changes'] == ['wrote /opt/parker-emu/model.py', 'unmounted /run/parker (code)', 'mounted /run/parker']
    assert guest.ran == [['umount'], ['mount', '-t', 'parker', 'none', '/run/parker']]
    assert guest.boots == [True]  # no new emulated boot: partitions persist


def test_new_config_is_a_new_emulated_boot(guest):
    run(guest, parker_emu_mounted=True)
    status, result = run(guest, parker_emu_mounted=True, parker_emu_cma='2G')
    assert status == 0
    assert result['changes'] == ['wrote /etc/parker-emu/config.json', 'unmounted /run/parker (config)',
                                 'new emulated boot (config changed)', 'mounted /run/parker']
    assert guest.boots == [True, True] and guest.mounted


def test_a_failed_run_is_finished_by_the_next(guest):
    run(guest)
    guest.fail_boot = True
    status, result = run(guest, parker_emu_cma='2G')
    assert status == 1 and result['failed'] is True and result['msg'] == 'boot failed'
    assert result['changed'] is True and result['changes'] == ['wrote /etc/parker-emu/config.json']
    guest.fail_boot = False
    # The config file is in place already; the stamp says its boot never happened.
    assert run(guest, parker_emu_cma='2G') == (0, {'changed': True, 'changes': ['new emulated boot (config changed)']})
    assert run(guest, parker_emu_cma='2G') == (0, {'changed': False, 'changes': []})


def test_bad_settings_still_one_json_line(guest):
    out = io.StringIO()
    assert install.main(['{"parker_emu_root": 1}'], guest=guest, out=out) == 1
    result = json.loads(out.getvalue())
    assert result['failed'] is True and result['changed'] is False and 'missing' in result['msg']
    out = io.StringIO()
    assert install.main(['not json'], guest=guest, out=out) == 1
    assert 'not JSON' in json.loads(out.getvalue())['msg']
