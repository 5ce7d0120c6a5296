"""FUSE filesystem that emulates ByteDance's Parker kernfs (/sys/fs/parker) for tests.

Usage: python3 parkerfs.py MOUNTPOINT --config /etc/parker-emu/config.json [--foreground]
         (what parker-emu@<root>.service runs; mount -t parker none ROOT starts it, see boot.py)
       python3 parkerfs.py MOUNTPOINT [--root /] [--boot-delay SECONDS] [--foreground]
         [--online-cap SECONDS] [--no-boot] [--kexec-record FILE [--log FILE]]   (standalone)

Emulated: the layout and rules of model.ParkerKernfs (mkdir/rmdir of partitions, id,
control_structure, cpus, memory, bind, unbind, online, devices/<bdf>/), with the real
host effects of model.SysfsBackend under --root (CPU offline/online, memory-block
offline/online, virtio unbind/re-probe, /sys/kernel/kexec_loaded). With --config the
``memory`` writes are also accounted in whole GiB units of the Parker CMA areas of the
emulated boot (boot.py), whose sysfs/debugfs counter files this daemon keeps current,
and the kernfs state is saved after every change so that the next mount reattaches it
(the daemon exits at umount). A write to ``online``
blocks in the FUSE handler (threads are enabled, so other files stay readable) until
the built-in instance simulator reports the instance online, --boot-delay seconds
after the start, or until --online-cap seconds (default 600) pass (ETIMEDOUT, and the
emulated parker_mutex stays wedged: later mkdir/rmdir/writes get EDEADLK until the
instance reports online, where a real kernel would block them forever).

While that writer blocks, reads of ``online`` and ``control_structure`` (of every
partition: parker_mutex is global) block too, as on a real Boot Kernel; ``id``, ``cpus``,
``memory``, directory listings and the .emu files do not.

Like the real kernel's spin loop, a blocked ``online`` writer or reader cannot be
killed: once FUSE has handed the request to this daemon the caller waits for the
answer (state D in request_wait_answer, even after SIGKILL), so
``timeout 3 cat online`` returns only when the instance comes online (write
.emu/<name>/boot from another process) or --online-cap expires (observed: 600 s with
the default cap). Tests that provoke a hang should pass a short --online-cap or
release it through .emu.

Emulator-only control files, outside the Parker ABI and hidden from readdir (so
``ls /sys/fs/parker`` lists only partitions):
  MOUNT/.emu/<name>/shutdown  write anything: the application kernel powers itself off
                              (clears online; rmdir is then allowed)
  MOUNT/.emu/<name>/boot      write anything: report the instance online now
  MOUNT/.emu/<name>/hang      write anything: the next start hangs in early boot and never
                              reports online on its own (boot still releases it)
  MOUNT/.emu/<name>/state     read: started/online flags, one per line, and "error ..."
                              when the instance could not boot or its network setup failed

With --kexec-record (see instance.py and kexec_recorder.py) a start boots only an image
that Parker's partition BSP could boot here, and the instance gets the partition's NICs
in network namespace parker-<name> with its ip= address; shutdown stops them again.

Not emulated: a real boot (nothing is kexec'd; the simulator judges the loaded image
and flips the online flag, and never does so for a partition without memory), the control page
contents, file modes beyond 0444/0200/0644, and the kernel oops when the host unbinds a
claimed device. The single mount is mount.parker's check (boot.py), not this daemon's.
"""

import argparse
import errno
import os
import stat
import subprocess
import sys
import threading
import time

try:
    from fuse import FUSE, FuseOSError, Operations
except ImportError:  # Debian's python3-fusepy installs the module as "fusepy"
    from fusepy import FUSE, FuseOSError, Operations

try:
    from .model import ONLINE_WAIT_CAP, PARTITION_FILES, CmaAreas, FakeBackend, ParkerKernfs, SysfsBackend
    from .instance import InstanceHost, check_boot, network_plan
    from . import boot as emuboot
except ImportError:
    from model import ONLINE_WAIT_CAP, PARTITION_FILES, CmaAreas, FakeBackend, ParkerKernfs, SysfsBackend
    from instance import InstanceHost, check_boot, network_plan
    import boot as emuboot

MODES = {'id': 0o444, 'control_structure': 0o444, 'cpus': 0o644, 'memory': 0o644,
         'bind': 0o200, 'unbind': 0o200, 'online': 0o644}
EMU = '.emu'
EMU_FILES = {'shutdown': 0o200, 'boot': 0o200, 'hang': 0o200, 'state': 0o444}


class InstanceSimulator:
    """Stands in for the application kernel: comes online ``delay`` seconds after a start.

    With a ``host`` (instance.InstanceHost) it first judges the image in the kexec slot as
    the partition BSP would boot it, and gives the instance its NICs and ip= address; an
    image that would not boot here never comes online. Without one, any start boots.
    """

    def __init__(self, delay=3.0, enabled=True, host=None):
        self.delay = delay
        self.enabled = enabled
        self.host = host
        self.model = None
        self.errors = {}
        self.hanging = set()

    def on_start(self, name):
        self.errors.pop(name, None)
        if name in self.hanging:
            self.hanging.discard(name)
            self.errors[name] = 'hung in early boot (.emu hang)'
        elif self.enabled:
            threading.Thread(target=self._boot, args=(name,), daemon=True).start()

    def _boot(self, name):
        time.sleep(self.delay)
        try:
            info = self.model.info(name)
            if info['memory'] is None:
                self.errors[name] = 'no memory: the kernel never reaches its PCI init'
                return
            if self.host is not None:
                problems, tokens = check_boot(self.host.slot(), info['control'], info['memory'])
                if problems:
                    self.errors[name] = '; '.join(problems)
                    self.host.log('%s: boot failed: %s' % (name, self.errors[name]))
                    return
                try:
                    self.host.network_up(name, network_plan(tokens, self.host.nics(info['devices'])))
                except (OSError, subprocess.SubprocessError) as exc:
                    # A kernel whose network setup failed still reaches the end of its PCI init and
                    # reports online; it is the health check that must notice.
                    self.errors[name] = 'network setup failed: %s' % exc
                    self.host.log('%s: %s' % (name, self.errors[name]))
            self.model.instance_online(name)
        except OSError as exc:
            self.errors[name] = 'boot failed: %s' % exc

    def shutdown(self, name):
        """The application kernel powers itself off: its NICs stop, then online clears."""
        if self.host is not None:
            self.host.network_down(name, self.host.nics(self.model.devices(name)))
        self.model.instance_shutdown(name)


def make_model(backend, delay=3.0, online_cap=ONLINE_WAIT_CAP, boot=True, host=None, cma=None):
    sim = InstanceSimulator(delay, boot, host)
    model = ParkerKernfs(backend, on_start=sim.on_start, online_wait_cap=online_cap, cma=cma)
    sim.model = model
    model.simulator = sim
    return model


def _fuse_error(exc):
    return FuseOSError(exc.errno or errno.EIO)


class ParkerFS(Operations):
    """Map paths onto the model; every OSError becomes the same errno for the caller."""

    def __init__(self, model):
        self.model = model
        self.started = time.time()

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def split(path):
        return [part for part in path.split('/') if part]

    def kind(self, path):
        """Return ('dir'|'file', mode, parts) or raise ENOENT."""
        parts = self.split(path)
        names = self.model.names()
        if not parts:
            return 'dir', 0o755, parts
        if parts[0] == EMU:
            if len(parts) == 1 or (len(parts) == 2 and parts[1] in names):
                return 'dir', 0o755, parts
            if len(parts) == 3 and parts[1] in names and parts[2] in EMU_FILES:
                return 'file', EMU_FILES[parts[2]], parts
            raise FuseOSError(errno.ENOENT)
        if parts[0] not in names:
            raise FuseOSError(errno.ENOENT)
        if len(parts) == 1:
            return 'dir', 0o755, parts
        if len(parts) == 2 and parts[1] in PARTITION_FILES:
            return 'file', MODES[parts[1]], parts
        if parts[1] == 'devices':
            try:
                devices = self.model.devices(parts[0])
            except OSError as exc:
                raise _fuse_error(exc) from exc
            if len(parts) == 2 or (len(parts) == 3 and parts[2] in devices):
                return 'dir', 0o755, parts
        raise FuseOSError(errno.ENOENT)

    def content(self, parts):
        try:
            if parts[0] == EMU:
                info = self.model.info(parts[1])
                error = self.model.simulator.errors.get(parts[1]) if self.model.simulator else None
                return ('started %d\nonline %d\n%s' % (info['started'], info['online'],
                                                       'error %s\n' % error if error else '')).encode()
            return self.model.read(parts[0], parts[1]).encode()
        except OSError as exc:
            raise _fuse_error(exc) from exc

    # -- metadata ---------------------------------------------------------------
    def getattr(self, path, fh=None):
        what, mode, _parts = self.kind(path)
        now = self.started
        attrs = {'st_uid': os.getuid(), 'st_gid': os.getgid(), 'st_atime': now, 'st_mtime': now, 'st_ctime': now}
        if what == 'dir':
            attrs.update(st_mode=stat.S_IFDIR | mode, st_nlink=2, st_size=0)
        else:
            # kernfs attribute files report 4096 bytes whatever they hold.
            attrs.update(st_mode=stat.S_IFREG | mode, st_nlink=1, st_size=4096)
        return attrs

    def readdir(self, path, fh):
        what, _mode, parts = self.kind(path)
        if what != 'dir':
            raise FuseOSError(errno.ENOTDIR)
        entries = ['.', '..']
        if not parts:
            entries += self.model.names()  # .emu is deliberately not listed
        elif parts[0] == EMU:
            entries += self.model.names() if len(parts) == 1 else sorted(EMU_FILES)
        elif len(parts) == 1:
            entries += sorted(PARTITION_FILES) + ['devices']
        elif len(parts) == 2:
            entries += self.model.devices(parts[0])
        return entries

    def mkdir(self, path, mode):
        parts = self.split(path)
        if not parts:
            raise FuseOSError(errno.EEXIST)
        if len(parts) > 1 or parts[0] == EMU:
            self.kind('/'.join(parts[:-1]))  # ENOENT for a missing parent
            raise FuseOSError(errno.EPERM)
        try:
            self.model.mkdir(parts[0])
        except OSError as exc:
            raise _fuse_error(exc) from exc

    def rmdir(self, path):
        what, _mode, parts = self.kind(path)
        if what != 'dir':
            raise FuseOSError(errno.ENOTDIR)
        if len(parts) != 1 or parts[0] == EMU:
            raise FuseOSError(errno.EPERM)
        try:
            self.model.rmdir(parts[0])
        except OSError as exc:
            raise _fuse_error(exc) from exc

    # -- files ------------------------------------------------------------------------
    def open(self, path, flags):
        what, mode, _parts = self.kind(path)
        if what == 'dir':
            raise FuseOSError(errno.EISDIR)
        access = flags & os.O_ACCMODE
        if access in (os.O_RDONLY, os.O_RDWR) and not mode & 0o444:
            raise FuseOSError(errno.EACCES)
        if access in (os.O_WRONLY, os.O_RDWR) and not mode & 0o200:
            raise FuseOSError(errno.EACCES)
        return 0

    def read(self, path, size, offset, fh):
        what, _mode, parts = self.kind(path)
        if what == 'dir':
            raise FuseOSError(errno.EISDIR)
        return self.content(parts)[offset:offset + size]

    def truncate(self, path, length, fh=None):
        # Shells open with O_TRUNC for "echo x > file"; kernfs ignores the truncation.
        what, _mode, _parts = self.kind(path)
        if what == 'dir':
            raise FuseOSError(errno.EISDIR)

    def write(self, path, data, offset, fh):
        what, _mode, parts = self.kind(path)
        if what == 'dir':
            raise FuseOSError(errno.EISDIR)
        try:
            if parts[0] == EMU:
                if parts[2] == 'shutdown':
                    self.model.simulator.shutdown(parts[1])
                elif parts[2] == 'boot':
                    self.model.instance_online(parts[1])
                elif parts[2] == 'hang':
                    self.model.simulator.hanging.add(parts[1])
                    if self.model.on_change:
                        self.model.on_change()  # a later mount keeps the armed hang
                else:
                    raise FuseOSError(errno.EACCES)
                return len(data)
            self.model.write(parts[0], parts[1], data)
        except OSError as exc:
            if isinstance(exc, FuseOSError):
                raise
            raise _fuse_error(exc) from exc
        return len(data)

    def create(self, path, mode, fi=None):
        raise FuseOSError(errno.EACCES)

    def unlink(self, path):
        raise FuseOSError(errno.EPERM)

    def rename(self, old, new):
        raise FuseOSError(errno.EPERM)

    def chmod(self, path, mode):
        raise FuseOSError(errno.EPERM)

    def chown(self, path, uid, gid):
        raise FuseOSError(errno.EPERM)

    def utimens(self, path, times=None):
        self.kind(path)
        return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description='Emulate the Parker kernfs with FUSE.')
    parser.add_argument('mountpoint')
    parser.add_argument('--root', default='/', help='sysfs root for host effects (default /)')
    parser.add_argument('--boot-delay', type=float, default=3.0, help='seconds until the instance reports online')
    parser.add_argument('--online-cap', type=float, default=ONLINE_WAIT_CAP, help='give up a blocked online write after this')
    parser.add_argument('--no-boot', action='store_true', help='never report instances online on their own')
    parser.add_argument('--fake-backend', action='store_true', help='in-memory host instead of --root')
    parser.add_argument('--kexec-record', help='judge starts by what kexec_recorder.py saw loaded, and give '
                        'instances their NICs (netns parker-<name>) and ip= address')
    parser.add_argument('--log', help='append instance boots and failures to this file')
    parser.add_argument('--config', help='boot.py config file: the CMA areas of the emulated boot, the instance '
                        'settings, and the kernfs state kept across unmount and mount (what deploy.yml runs)')
    parser.add_argument('--foreground', '-f', action='store_true')
    args = parser.parse_args(argv)
    if args.config:
        return run_configured(args)
    backend = FakeBackend() if args.fake_backend else SysfsBackend(args.root)
    host = InstanceHost(args.root, args.kexec_record, args.log) if args.kexec_record else None
    model = make_model(backend, args.boot_delay, args.online_cap, not args.no_boot, host)
    mount(model, args.mountpoint, args.foreground)
    return 0


def mount(model, mountpoint, foreground):
    FUSE(ParkerFS(model), mountpoint, foreground=foreground, nothreads=False,
         fsname='parker', subtype='parker', allow_other=os.getuid() == 0, direct_io=True)


class Saver:
    """Writes the kernfs state after every change, so the next mount reattaches it (section 2.3)."""

    def __init__(self, path, model, backend, record):
        self.path = path
        self.model = model
        self.backend = backend
        self.record = record
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            emuboot.write_json(self.path, {'boot_id': self.record['boot_id'], 'layout': self.record['layout'],
                                           'model': self.model.state(), 'backend': self.backend.state(),
                                           'hanging': sorted(self.model.simulator.hanging)})

    def load(self):
        saved = emuboot.read_json(self.path)
        if not saved or saved.get('boot_id') != self.record['boot_id'] or saved.get('layout') != self.record['layout']:
            return False
        self.model.restore(saved['model'])
        self.backend.restore(saved.get('backend', {}))
        self.model.simulator.hanging = set(saved.get('hanging', []))
        return True


def run_configured(args):
    config = emuboot.load_config(args.config)
    record = emuboot.boot(config)  # mount.parker has normally booted the emulation already
    views = emuboot.Views(record['views']['sysfs'], record['views']['debugfs'])
    cma = CmaAreas(dict((int(n), tuple(a)) for n, a in record['areas'].items()), on_change=views.update)
    backend = SysfsBackend(config['sysroot'])
    host = InstanceHost(config['sysroot'], config['kexec_record'], config['log'])
    model = make_model(backend, float(config['boot_delay']), float(config['online_cap']), True, host, cma)
    saver = Saver(emuboot.kernfs_path(config), model, backend, record)
    saver.load()
    emuboot.write_views(views, model.cma)
    model.on_change = saver
    try:
        mount(model, args.mountpoint, args.foreground)
    finally:
        saver()
    return 0


if __name__ == '__main__':
    sys.exit(main())
