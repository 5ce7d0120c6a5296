"""One kernel oracle for the unit tests: the Parker emulation's model (tests/parker_emu/model.py) behind a
fake sysfs tree (fakehost.FakeHost), and the real modules' main() run against it.

``ParkerHost`` routes every write the collection makes under the kernfs root to the model, the same
state machine the fleet's FUSE emulation runs (the RFC's rules and errnos, the CMA areas in GiB units,
bind keeping the host driver link), and renders the model's partitions back as files for the
collection to read. The model's host effects land in the tree: CPUs go offline, a claimed device's
netdev or disk leaves the Boot Kernel (its PCI driver link stays), rmdir brings them back.
Elsewhere in the tree, fakehost.KernelSim gives sysfs writes their effects.

``run_module(module, args, ...)`` runs a module's main() with those args (the argument spec applies),
HostIO rooted at the tree and commands answered by a dict; it returns the result dict.
"""
import errno
import json
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from parker_emu import model as emu  # noqa: E402  pylint: disable=wrong-import-position

ROOT = '/sys/fs/parker'
GIB = 1 << 30


class TreeBackend(emu.FakeBackend):
    """The model's host effects on a FakeHost tree; memory comes from CMA areas, as on a Parker kernel."""

    def __init__(self, host, areas):
        super(TreeBackend, self).__init__(cpus={}, areas=dict((n, [a]) for n, a in areas.items()), devices={})
        self.host = host
        self.parked = {}

    def nr_cpu_ids(self):
        return self.host.ncpu

    def cpu_is_online(self, cpu):
        path = self.host.path('/sys/devices/system/cpu/cpu%d/online' % cpu)
        return not os.path.exists(path) or self.host.read('/sys/devices/system/cpu/cpu%d/online' % cpu) == '1'

    def _cpu(self, cpu, value):
        if cpu == 0:
            raise emu.oserror(errno.EPERM, 'CPU 0 cannot be offlined')
        self.host.write('/sys/devices/system/cpu/cpu%d/online' % cpu, value)
        self.host.sync_cpu_online()

    def cpu_offline(self, cpu):
        self._cpu(cpu, '0')

    def cpu_online(self, cpu):
        self._cpu(cpu, '1')

    def cpu_node(self, cpu):
        base = self.host.path('/sys/devices/system/cpu/cpu%d' % cpu)
        return next(int(n[4:]) for n in os.listdir(base) if n.startswith('node') and n[4:].isdigit())

    def pci_exists(self, bdf):
        return os.path.isdir(self.host.path('/sys/bus/pci/devices/' + bdf))

    def pci_enabled(self, bdf):
        return os.path.lexists(self.host.path('/sys/bus/pci/devices/%s/driver' % bdf)) and bdf not in self.parked

    def pci_detach(self, bdf):
        """Its netdev or disk leaves the Boot Kernel; the PCI driver link stays (parker-interface.md §2.8)."""
        links = []
        for top in ('/sys/class/net', '/sys/block', '/sys/class/block'):
            for name in os.listdir(self.host.path(top)) if os.path.isdir(self.host.path(top)) else []:
                link = self.host.path(top + '/' + name)
                if ('/%s/' % bdf) in os.path.realpath(link) + '/':
                    links.append((link, os.readlink(link)))
                    os.remove(link)
        self.parked[bdf] = links

    def pci_reprobe(self, bdf):
        for link, target in self.parked.pop(bdf, []):
            os.symlink(target, link)

    def kexec_loaded(self):
        return self.host.read('/sys/kernel/kexec_loaded') == '1'


class ParkerHost:
    """A Parker Boot Kernel: the fake tree, the model as its kernfs, the CMA areas laid out from parker_cma=."""

    def __init__(self, host, monkeypatch, parker_cma='4G', failed=(), mounted=True, root=ROOT, boots=True,
                 logged=True):
        self.host, self.root = host, root
        nodes = sorted(int(n[4:]) for n in os.listdir(host.path('/sys/devices/system/node')) if n[4:].isdigit())
        areas, lines, _failed = emu.cma_layout(parker_cma, nodes, failed)
        self.backend = TreeBackend(host, areas)
        self.boots = boots   # False: a started Application Kernel never reports online (start_timeout tests)
        self.model = emu.ParkerKernfs(self.backend, on_start=self._instance_boots, online_wait_cap=1.0,
                                      cma=emu.CmaAreas(areas))
        cmdline = host.read('/proc/cmdline')
        host.write('/proc/cmdline', cmdline + ' parker_cma=%s' % parker_cma)
        # logged=False: a kernel that reports nothing about its areas (the collection can only expect them).
        host.kmsg('tsc: Refined TSC clocksource calibration: 2893.202 MHz', *(lines if logged else []))
        host.parker_kernel(root, mounted)
        host.write('/usr/sbin/kexec', '#!fake')
        host.write('/sys/kernel/kexec_loaded', '0')
        self.kexec_loads = []
        self._install(monkeypatch)
        self.render()

    # -- the Application Kernel --------------------------------------------------------
    def _instance_boots(self, name):
        if self.boots:
            self.model.instance_online(name)

    def poweroff(self, name):
        """The Application Kernel runs poweroff inside: it clears online."""
        self.model.instance_shutdown(name)
        self.render()

    def commands(self, extra=None):
        """run_command answers: kexec-tools flips the kernel's loaded flag like the syscall would."""
        def kexec(argv):
            if '-u' not in argv:
                self.kexec_loads.append(argv)
            self.host.write('/sys/kernel/kexec_loaded', '0' if '-u' in argv else '1')
            return 0, '', ''

        def mount(argv):
            self.host.mount_parker(argv[-1])
            self.render()
            return 0, '', ''
        answers = {('/usr/sbin/kexec',): kexec, ('mount', '-t', 'parker'): mount}
        answers.update(extra or {})
        return answers

    # -- the kernfs as files ---------------------------------------------------------------
    def render(self):
        """Lay the model's partitions out as the kernfs files the collection reads."""
        top = self.host.path(self.root)
        mounted = ' %s parker ' % self.root in open(self.host.path('/proc/mounts')).read()
        names = self.model.names() if mounted else []
        for name in os.listdir(top):
            if name not in names and not name.startswith('.'):
                shutil.rmtree(os.path.join(top, name))
        for name in names:
            info = self.model.info(name)
            base = self.root + '/' + name
            os.makedirs(self.host.path(base + '/devices'), exist_ok=True)
            self.host.write(base + '/id', self.model.read(name, 'id').strip())
            self.host.write(base + '/control_structure', '0x%x' % info['control'])
            self.host.write(base + '/cpus', emu.format_cpulist(info['cpus']))
            self.host.write(base + '/online', '1' if info['online'] else '0')
            memory = self.host.path(base + '/memory')
            if info['memory']:
                self.host.write(base + '/memory', '%d@0x%x' % (info['memory'][1], info['memory'][0]))
            elif os.path.exists(memory):
                os.remove(memory)
            devices = self.host.path(base + '/devices')
            for bdf in os.listdir(devices):
                if bdf not in info['devices']:
                    os.rmdir(os.path.join(devices, bdf))
            for bdf in info['devices']:
                os.makedirs(os.path.join(devices, bdf), exist_ok=True)

    def _install(self, monkeypatch):
        from ansible_collections.parker.kernel.plugins.module_utils import _hostio
        oracle, root = self, self.root
        inner_write, inner_mkdir, inner_rmdir = (_hostio.Transaction._write_now, _hostio.Transaction.mkdir,
                                                 _hostio.Transaction._rmdir_now)

        def kernfs(rel):
            rel = rel.rstrip('/')
            return rel[len(root) + 1:].split('/') if rel.startswith(root + '/') else None

        def call(what, operation, *args):
            try:
                return operation(*args)
            except OSError as exc:
                raise _hostio.ApplyError(what, exc.errno, exc.strerror)
            finally:
                oracle.render()

        def write(txn, rel, value):
            parts = kernfs(rel)
            if parts and len(parts) == 2:
                value = value.decode() if isinstance(value, bytes) else str(value)
                return call('write %r to %s' % (value, rel), oracle.model.write, parts[0], parts[1], value)
            return inner_write(txn, rel, value)

        def mkdir(txn, rel):
            parts = kernfs(rel)
            if not parts:
                return inner_mkdir(txn, rel)
            txn.actions.append('mkdir %s' % rel)
            if txn.check_mode:
                return None
            call('mkdir %s' % rel, oracle.model.mkdir, parts[0])
            txn._undo.append(('rmdir', rel))
            return None

        def rmdir(txn, rel):
            parts = kernfs(rel)
            if not parts:
                return inner_rmdir(txn, rel)
            return call('rmdir %s' % rel, oracle.model.rmdir, parts[0])

        def write_blocking(txn, rel, value, timeout, on_spawn=None):
            txn.actions.append('write %s <- %s (wait up to %ds)' % (rel, value, timeout))
            if txn.check_mode:
                return
            if on_spawn is not None:
                on_spawn(4242)
            parts = kernfs(rel)
            try:
                call('write %s to %s' % (value, rel), oracle.model.write, parts[0], parts[1], value)
            except _hostio.ApplyError as exc:
                if exc.errno == errno.ETIMEDOUT:
                    exc.detail = 'still blocked after %d s' % timeout
                raise
        monkeypatch.setattr(_hostio.Transaction, '_write_now', write)
        monkeypatch.setattr(_hostio.Transaction, 'mkdir', mkdir)
        monkeypatch.setattr(_hostio.Transaction, '_rmdir_now', rmdir)
        monkeypatch.setattr(_hostio.Transaction, 'write_blocking', write_blocking)

    # -- views the tests compare ---------------------------------------------------------------
    def view(self):
        """The kernel's own view: Boot Kernel CPUs, devices the Boot Kernel sees, partitions, kexec slot."""
        host = self.host
        return {'online': host.read('/sys/devices/system/cpu/online'),
                'net': sorted(os.listdir(host.path('/sys/class/net'))),
                'block': sorted(os.listdir(host.path('/sys/block'))),
                'partitions': dict((n, self.model.info(n)) for n in self.model.names()),
                'kexec_loaded': host.read('/sys/kernel/kexec_loaded')}

    def records(self):
        path = self.host.path('/run/parker-kernel/partitions.json')
        return json.load(open(path)) if os.path.exists(path) else {}


class ModuleExit(Exception):
    def __init__(self, result):
        super(ModuleExit, self).__init__(result)
        self.result = result


def run_module(monkeypatch, module, args, root, check_mode=False, diff=False, commands=None):
    """Run ``module``'s main() with ``args`` against the tree at ``root``; returns its result (failed: True
    when it failed). Commands go to ``commands`` ({argv prefix tuple: (rc, out, err) or callable(argv)})."""
    from ansible.module_utils import basic
    from ansible_collections.parker.kernel.plugins.module_utils import _common, _hostio
    commands = commands or {}
    ran, warnings = [], []

    def run_command(self, argv, **_kw):
        ran.append(list(argv))
        for prefix, reply in commands.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return reply(argv) if callable(reply) else reply
        return 0, '', ''

    def exit_json(self, **result):
        raise ModuleExit(result)

    def fail_json(self, **result):
        result['failed'] = True
        raise ModuleExit(result)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warnings.append(text))
    monkeypatch.setattr(_common, 'HostIO', lambda _root: _hostio.HostIO(root))
    # None stands for an option the task leaves out (omit), as the tests' params() write it.
    args = dict(((k, v) for k, v in args.items() if v is not None), _ansible_check_mode=check_mode, _ansible_diff=diff)
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:   # ansible-core before 2.19
        patch_module_args = None
    with pytest.raises(ModuleExit) as caught:
        if patch_module_args is not None:
            with patch_module_args(args):
                module.main()
        else:
            monkeypatch.setattr(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode())
            module.main()
    result = caught.value.result
    result['warnings'] = warnings
    result['_ran'] = ran
    return result
