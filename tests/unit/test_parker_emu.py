"""Unit tests of the Parker kernfs emulator (tests/parker_emu/model.py).

Covers the RFC rules and errnos against FakeBackend, the cpus leak hazard, the
blocking start, rmdir, and SysfsBackend against a FakeHost sysfs tree. The FUSE
adapter is exercised without a mount when fusepy is importable.
"""
import errno
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from parker_emu import model as emu  # noqa: E402  pylint: disable=wrong-import-position
from parker_emu.model import FakeBackend, ParkerKernfs, SysfsBackend  # noqa: E402  pylint: disable=wrong-import-position
from unit_helpers import import_parkerfs  # noqa: E402  pylint: disable=wrong-import-position


def errno_of(call, *args):
    with pytest.raises(OSError) as exc:
        call(*args)
    return exc.value.errno


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def fs(backend):
    return ParkerKernfs(backend, online_wait_cap=5)


def ready(fs, name='p1', cpus='2-3\n', memory='512M\n', bdf=None):
    fs.mkdir(name)
    fs.write(name, 'cpus', cpus)
    if memory:
        fs.write(name, 'memory', memory)
    if bdf:
        fs.write(name, 'bind', bdf)


# -- parsers ---------------------------------------------------------------------
@pytest.mark.parametrize('text, cpus', [('', set()), ('\n', set()), ('2-3\n', {2, 3}), ('1,4-5', {1, 4, 5}),
                                        ('0-7:1/4', {0, 4}), ('0-7:0/4', set()), ('N', {7}), ('all', set(range(8)))])
def test_parse_cpulist(text, cpus):
    assert emu.parse_cpulist(text, 8) == cpus


@pytest.mark.parametrize('text', ['2-x', '3-1', 'a', '1,,2', '0-7:5/4', '0-7:1/0', '1:1/2'])
def test_parse_cpulist_malformed(text):
    with pytest.raises(ValueError):
        emu.parse_cpulist(text, 8)


def test_parse_cpulist_range():
    with pytest.raises(OverflowError):
        emu.parse_cpulist('8', 8)


def test_format_cpulist():
    assert emu.format_cpulist({2, 3, 5, 7, 8, 9}) == '2-3,5,7-9'
    assert emu.format_cpulist(set()) == ''


@pytest.mark.parametrize('text, size', [('4G', 4 << 30), ('512M\n', 512 << 20), ('0x1000', 4096), ('1k', 1024)])
def test_memparse(text, size):
    assert emu.memparse(text) == size


@pytest.mark.parametrize('text', ['4 G', '4G\n\n', 'G', '-1', '4X', ''])
def test_memparse_malformed(text):
    with pytest.raises(ValueError):
        emu.memparse(text)


# -- mkdir / id / control_structure ----------------------------------------------------
def test_mkdir_files_and_ids(fs):
    fs.mkdir('p1')
    fs.mkdir('p2')
    assert fs.names() == ['p1', 'p2']
    assert fs.read('p1', 'id') == '1\n'
    assert fs.read('p2', 'id') == '2\n'
    assert fs.read('p1', 'online') == '0\n'
    assert fs.read('p1', 'cpus') == '\n'
    first = int(fs.read('p1', 'control_structure'), 16)
    second = int(fs.read('p2', 'control_structure'), 16)
    assert first % 4096 == 0 and second % 4096 == 0 and first != second
    assert fs.read('p1', 'control_structure').startswith('0x')
    assert fs.devices('p1') == []


def test_ids_repeat_after_rmdir(fs):
    fs.mkdir('p1')
    fs.mkdir('p2')
    fs.rmdir('p1')
    fs.mkdir('p3')
    assert fs.read('p3', 'id') == fs.read('p2', 'id') == '2\n'


def test_mkdir_refusals(fs):
    assert errno_of(fs.mkdir, 'bad\nname') == errno.EINVAL
    fs.mkdir('p1')
    assert errno_of(fs.mkdir, 'p1') == errno.EEXIST
    assert errno_of(fs.mkdir, 'nested', 'p1') == errno.EPERM
    assert errno_of(fs.mkdir, 'x' * 256) == errno.ENAMETOOLONG


def test_unknown_partition_and_file(fs):
    assert errno_of(fs.read, 'nope', 'id') == errno.ENOENT
    assert errno_of(fs.rmdir, 'nope') == errno.ENOENT
    fs.mkdir('p1')
    assert errno_of(fs.read, 'p1', 'bind') == errno.EACCES
    assert errno_of(fs.write, 'p1', 'id', '3') == errno.EACCES
    assert errno_of(fs.write, 'p1', 'control_structure', '3') == errno.EACCES


# -- cpus -----------------------------------------------------------------------------
def test_cpus_offlines_in_host(fs, backend):
    fs.mkdir('p1')
    fs.write('p1', 'cpus', '2-3\n')
    assert fs.read('p1', 'cpus') == '2-3\n'
    assert not backend.cpu_is_online(2) and not backend.cpu_is_online(3)
    assert backend.cpu_is_online(1)


def test_cpus_owned_by_any_partition(fs, backend):
    ready(fs, memory=None)
    fs.mkdir('p2')
    assert errno_of(fs.write, 'p2', 'cpus', '3') == errno.EINVAL
    assert errno_of(fs.write, 'p2', 'cpus', '4,3') == errno.EINVAL
    assert fs.read('p2', 'cpus') == '\n'
    assert backend.cpu_is_online(4)  # nothing offlined by a refused write
    # this partition's own CPUs count as owned too
    assert errno_of(fs.write, 'p1', 'cpus', '2') == errno.EINVAL
    assert fs.read('p1', 'cpus') == '2-3\n'


def test_cpus_limit(fs):
    fs.mkdir('p1')
    fs.backend.nodes = {c: 0 for c in range(600)}
    fs.backend.online = set(range(600))
    assert errno_of(fs.write, 'p1', 'cpus', '1-513') == errno.EINVAL
    fs.write('p1', 'cpus', '1-512')
    assert fs.read('p1', 'cpus') == '1-512\n'


def test_cpus_beyond_nr_cpu_ids(fs):
    fs.mkdir('p1')
    assert errno_of(fs.write, 'p1', 'cpus', '8') == errno.EINVAL


def test_cpus_malformed_leaks(fs, backend):
    """Section 2.8: 0 accepted, then 2-x gets EINVAL, cpus reads empty, CPU 1 stays offline."""
    fs.mkdir('p1')
    fs.write('p1', 'cpus', '1')
    assert not backend.cpu_is_online(1)
    fs.write('p1', 'cpus', '0')          # boot CPU: remove_cpu() fails, the write still succeeds
    assert fs.read('p1', 'cpus') == '0\n'
    assert backend.cpu_is_online(0)
    assert errno_of(fs.write, 'p1', 'cpus', '2-x') == errno.EINVAL
    assert fs.read('p1', 'cpus') == '\n'
    assert not backend.cpu_is_online(1)
    # the leaked CPU is no longer owned: another partition may take it, and rmdir does not return it
    fs.rmdir('p1')
    assert not backend.cpu_is_online(1)
    fs.mkdir('p2')
    fs.write('p2', 'cpus', '1')
    assert fs.read('p2', 'cpus') == '1\n'


def test_cpus_malformed_leak_with_live_set(fs, backend):
    ready(fs, memory=None)
    assert errno_of(fs.write, 'p1', 'cpus', '4-') == errno.EINVAL
    assert fs.read('p1', 'cpus') == '\n'
    assert not backend.cpu_is_online(2) and not backend.cpu_is_online(3)
    fs.rmdir('p1')
    assert not backend.cpu_is_online(2) and not backend.cpu_is_online(3)


def test_cpus_rewrite_leaks_old_set(fs, backend):
    ready(fs, memory=None)
    fs.write('p1', 'cpus', '4-5')
    assert fs.read('p1', 'cpus') == '4-5\n'
    fs.rmdir('p1')
    assert backend.cpu_is_online(4) and backend.cpu_is_online(5)
    assert not backend.cpu_is_online(2) and not backend.cpu_is_online(3)


def test_host_may_online_partition_cpu(fs, backend):
    """The hotplug guard always returns 0: nothing stops the host."""
    ready(fs, memory=None)
    backend.cpu_online(2)
    assert backend.cpu_is_online(2)
    assert fs.read('p1', 'cpus') == '2-3\n'


# -- memory ---------------------------------------------------------------------------
def test_memory_needs_cpus(fs):
    fs.mkdir('p1')
    assert errno_of(fs.write, 'p1', 'memory', '512M') == errno.EINVAL
    assert errno_of(fs.read, 'p1', 'memory') == errno.EINVAL


def test_memory_allocates_on_node_of_first_cpu(fs, backend):
    ready(fs, cpus='5-6', memory='512M\n')
    assert fs.read('p1', 'memory') == '536870912@0x140000000\n'
    assert backend.log[-1] == ('alloc', 1, 0x140000000, 512 << 20)


def test_memory_rewrite_releases_first(fs, backend):
    ready(fs)
    assert fs.read('p1', 'memory') == '536870912@0x100000000\n'
    fs.write('p1', 'memory', '1G')
    assert fs.read('p1', 'memory') == '1073741824@0x100000000\n'
    assert [entry[0] for entry in backend.log[-2:]] == ['release', 'alloc']


def test_memory_enomem_and_malformed(fs):
    ready(fs, memory=None)
    assert errno_of(fs.write, 'p1', 'memory', '2G') == errno.ENOMEM
    assert errno_of(fs.read, 'p1', 'memory') == errno.EINVAL
    assert errno_of(fs.write, 'p1', 'memory', 'lots') == errno.EINVAL
    assert errno_of(fs.write, 'p1', 'memory', '0') == errno.EINVAL
    fs.write('p1', 'memory', b'1G\n')  # FUSE hands over bytes
    assert fs.read('p1', 'memory') == '1073741824@0x100000000\n'


def test_memory_rewrite_failure_leaves_nothing(fs):
    ready(fs)
    assert errno_of(fs.write, 'p1', 'memory', '2G') == errno.ENOMEM
    assert errno_of(fs.read, 'p1', 'memory') == errno.EINVAL


# -- bind / unbind ------------------------------------------------------------------------
def test_bind_and_unbind(fs, backend):
    ready(fs, memory=None)
    fs.write('p1', 'bind', '0000:00:03.0')
    assert fs.devices('p1') == ['0000:00:03.0']
    assert not backend.pci_enabled('0000:00:03.0')
    # hazard: the host driver symlink still names virtio-pci
    assert backend.drivers['0000:00:03.0'] == 'virtio-pci'
    fs.write('p1', 'unbind', '0000:00:03.0\n')
    assert fs.devices('p1') == []
    assert backend.pci_enabled('0000:00:03.0')
    assert backend.log[-1] == ('reprobe', '0000:00:03.0')


def test_bind_refusals(fs, backend):
    fs.mkdir('p1')
    fs.mkdir('p2')
    assert errno_of(fs.write, 'p1', 'bind', '0000:00:1f.0') == errno.ENODEV
    assert errno_of(fs.write, 'p1', 'bind', 'eth0') == errno.EINVAL
    assert errno_of(fs.write, 'p1', 'bind', '0000:00:00.0') == errno.EBUSY  # no host driver
    fs.write('p1', 'bind', '0000:00:05.0')
    assert errno_of(fs.write, 'p2', 'bind', '0000:00:05.0') == errno.EBUSY
    assert errno_of(fs.write, 'p1', 'bind', '0000:00:05.0') == errno.EBUSY
    assert errno_of(fs.write, 'p2', 'unbind', '0000:00:05.0') == errno.EINVAL
    assert errno_of(fs.write, 'p1', 'unbind', '0000:00:1f.0') == errno.ENODEV
    assert errno_of(fs.write, 'p1', 'unbind', '0000:00:03.0') == errno.EINVAL
    assert fs.devices('p1') == ['0000:00:05.0']


def test_bind_limit(fs):
    devices = {'0000:%02x:%02x.0' % (1 + i // 32, i % 32): 'nvme' for i in range(257)}
    fs.backend.drivers = devices
    fs.mkdir('p1')
    names = sorted(devices)
    for bdf in names[:256]:
        fs.write('p1', 'bind', bdf)
    assert errno_of(fs.write, 'p1', 'bind', names[256]) == errno.ENOSPC


def test_host_unbind_of_claimed_device_oopses(fs, backend):
    fs.mkdir('p1')
    fs.write('p1', 'bind', '0000:00:03.0')
    assert errno_of(backend.host_unbind, '0000:00:03.0') == errno.EIO
    assert backend.oopses


# -- online -------------------------------------------------------------------------------
def start_in_thread(fs, name='p1'):
    outcome = {}

    def run():
        try:
            outcome['ret'] = fs.write(name, 'online', '1\n')
        except OSError as exc:
            outcome['errno'] = exc.errno
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_online_blocks_until_instance_reports(fs):
    started = []
    fs.on_start = started.append
    ready(fs, bdf='0000:00:03.0')
    thread, outcome = start_in_thread(fs)
    time.sleep(0.3)
    assert thread.is_alive() and started == ['p1']
    # reads work while the start blocks; mutating calls wait for parker_mutex
    assert fs.read('p1', 'online') == '0\n'
    assert fs.read('p1', 'cpus') == '2-3\n'
    blocked = threading.Thread(target=fs.mkdir, args=('p2',))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive() and fs.names() == ['p1']
    fs.instance_online('p1')
    thread.join(2)
    blocked.join(2)
    assert outcome == {'ret': 2}
    assert fs.read('p1', 'online') == '1\n'
    assert fs.names() == ['p1', 'p2']


def test_online_second_start_refused(fs):
    ready(fs)
    fs.on_start = fs.instance_online
    fs.write('p1', 'online', '1')
    assert errno_of(fs.write, 'p1', 'online', '1') == errno.EBUSY
    fs.instance_shutdown('p1')
    assert fs.read('p1', 'online') == '0\n'
    assert errno_of(fs.write, 'p1', 'online', 'anything') == errno.EBUSY


def test_online_without_kexec_image(fs, backend):
    ready(fs)
    backend.loaded = False
    assert errno_of(fs.write, 'p1', 'online', '1') == errno.EIO
    assert fs.read('p1', 'online') == '0\n'
    backend.loaded = True
    fs.on_start = fs.instance_online
    fs.write('p1', 'online', '1')  # the failed start did not use the partition up
    assert fs.read('p1', 'online') == '1\n'


def test_online_without_cpus(fs):
    fs.mkdir('p1')
    assert errno_of(fs.write, 'p1', 'online', '1') == errno.EINVAL


def test_online_timeout_wedges(backend):
    fs = ParkerKernfs(backend, online_wait_cap=0.2)
    ready(fs)
    assert errno_of(fs.write, 'p1', 'online', '1') == errno.ETIMEDOUT
    assert errno_of(fs.mkdir, 'p2') == errno.EDEADLK
    assert fs.read('p1', 'online') == '0\n'
    fs.instance_online('p1')  # a late boot ends the spin loop
    fs.mkdir('p2')


def test_instance_hooks_refusals(fs):
    assert errno_of(fs.instance_online, 'nope') == errno.ENOENT
    fs.mkdir('p1')
    assert errno_of(fs.instance_online, 'p1') == errno.EINVAL


# -- rmdir -----------------------------------------------------------------------------------
def test_rmdir_busy_while_online(fs):
    ready(fs)
    fs.on_start = fs.instance_online
    fs.write('p1', 'online', '1')
    assert errno_of(fs.rmdir, 'p1') == errno.EBUSY
    fs.instance_shutdown('p1')
    fs.rmdir('p1')
    assert fs.names() == []


def test_rmdir_returns_everything(fs, backend):
    ready(fs, cpus='2-3', memory='512M', bdf='0000:00:03.0')
    fs.write('p1', 'bind', '0000:00:05.0')
    free_before = dict((node, list(spans)) for node, spans in backend.areas.items())
    fs.rmdir('p1')
    assert backend.online == set(range(8))
    assert backend.allocated == {}
    assert backend.areas[0] != free_before[0]
    assert backend.pci_enabled('0000:00:03.0') and backend.pci_enabled('0000:00:05.0')
    assert fs.names() == []
    # everything can be claimed again
    ready(fs, cpus='2-3', memory='1G', bdf='0000:00:03.0')


# -- SysfsBackend against a FakeHost tree ---------------------------------------------------------
def test_sysfs_backend(host):
    backend = SysfsBackend(host.root)
    fs = ParkerKernfs(backend, online_wait_cap=5)
    assert backend.nr_cpu_ids() == 8
    assert backend.cpu_node(5) == 1 and backend.cpu_node(2) == 0
    # x86 drops an offline CPU from its node's cpulist; the cpuN/nodeM link stays
    host.write('/sys/devices/system/node/node1/cpulist', '4,6-7')
    assert backend.cpu_node(5) == 1
    fs.mkdir('p1')
    fs.write('p1', 'cpus', '2-3\n')
    assert host.read('/sys/devices/system/cpu/cpu2/online') == '0'
    assert host.read('/sys/devices/system/cpu/cpu3/online') == '0'
    # 200M on 128M blocks: two movable blocks of node 0 (32, 33)
    fs.write('p1', 'memory', '200M\n')
    assert fs.read('p1', 'memory') == '%d@0x%x\n' % (200 << 20, 32 * (128 << 20))
    assert host.read('/sys/devices/system/memory/memory32/state') == 'offline'
    assert host.read('/sys/devices/system/memory/memory33/state') == 'offline'
    assert host.read('/sys/devices/system/memory/memory34/state') == 'online'
    assert errno_of(fs.write, 'p1', 'memory', '1G') == errno.ENOMEM
    assert host.read('/sys/devices/system/memory/memory32/state') == 'online_movable'
    fs.write('p1', 'memory', '128M')
    assert fs.read('p1', 'memory') == '134217728@0x%x\n' % (32 * (128 << 20))
    fs.write('p1', 'bind', '0000:00:03.0')
    assert host.read('/sys/bus/pci/drivers/virtio-pci/unbind') == '0000:00:03.0'
    assert fs.devices('p1') == ['0000:00:03.0']
    assert errno_of(fs.write, 'p1', 'bind', '0000:00:00.0') == errno.EBUSY
    assert errno_of(fs.write, 'p1', 'bind', '0000:00:1f.0') == errno.ENODEV
    assert errno_of(fs.write, 'p1', 'online', '1') == errno.EIO  # kexec_loaded is 0
    host.write('/sys/kernel/kexec_loaded', '1')
    fs.on_start = fs.instance_online
    fs.write('p1', 'online', '1')
    assert errno_of(fs.rmdir, 'p1') == errno.EBUSY
    fs.instance_shutdown('p1')
    fs.rmdir('p1')
    assert host.read('/sys/devices/system/cpu/cpu2/online') == '1'
    assert host.read('/sys/devices/system/cpu/cpu3/online') == '1'
    assert host.read('/sys/devices/system/memory/memory32/state') == 'online_movable'
    assert host.read('/sys/bus/pci/drivers_probe') == '0000:00:03.0'


def test_sysfs_backend_rebinds_remembered_driver(host):
    backend = SysfsBackend(host.root)
    backend.pci_detach('0000:00:05.0')
    os.remove(host.path('/sys/bus/pci/devices/0000:00:05.0/driver'))  # what a real unbind does
    assert not backend.pci_enabled('0000:00:05.0')
    backend.pci_reprobe('0000:00:05.0')
    assert host.read('/sys/bus/pci/drivers/virtio-pci/bind') == '0000:00:05.0'


def test_sysfs_backend_node_without_movable_memory(host):
    backend = SysfsBackend(host.root)
    for block in (34, 35):
        host.write('/sys/devices/system/memory/memory%d/state' % block, 'offline')
    assert errno_of(backend.mem_alloc, 1, 1) == errno.ENOMEM


# -- FUSE adapter without a mount --------------------------------------------------------------------
def test_fuse_adapter_paths(monkeypatch):
    parkerfs = import_parkerfs(monkeypatch)
    model = parkerfs.make_model(FakeBackend(), delay=0.05, online_cap=5)
    ops = parkerfs.ParkerFS(model)
    # no attribute may shadow a FUSE operation (fusepy calls e.g. ops.lock on close)
    for name in ('lock', 'flush', 'release', 'open', 'read', 'write', 'truncate', 'getattr', 'readdir', 'mkdir', 'rmdir'):
        assert callable(getattr(ops, name, None) or (lambda: None)), name
    ops.mkdir('/p1', 0o755)
    assert ops.readdir('/', None) == ['.', '..', 'p1']
    assert ops.readdir('/p1', None) == ['.', '..', 'bind', 'control_structure', 'cpus', 'id', 'memory',
                                        'online', 'unbind', 'devices']
    ops.truncate('/p1/cpus', 0)
    ops.write('/p1/cpus', b'2-3\n', 0, 0)
    ops.write('/p1/memory', b'1G\n', 0, 0)
    ops.write('/p1/bind', b'0000:00:03.0', 0, 0)
    assert ops.readdir('/p1/devices', None) == ['.', '..', '0000:00:03.0']
    assert ops.getattr('/p1/devices/0000:00:03.0')['st_nlink'] == 2
    assert ops.read('/p1/memory', 4096, 0, 0) == b'1073741824@0x100000000\n'
    with pytest.raises(OSError) as exc:
        ops.mkdir('/p1/nested', 0o755)
    assert exc.value.errno == errno.EPERM
    ops.write('/p1/online', b'1\n', 0, 0)  # the simulator boots it after 50 ms
    assert ops.read('/p1/online', 10, 0, 0) == b'1\n'
    ops.write('/.emu/p1/shutdown', b'1', 0, 0)
    ops.rmdir('/p1')
    assert ops.readdir('/', None) == ['.', '..']


def test_fuse_adapter_errors_and_blocking(monkeypatch):
    parkerfs = import_parkerfs(monkeypatch)
    model = parkerfs.make_model(FakeBackend(), delay=0.3, online_cap=5)
    ops = parkerfs.ParkerFS(model)

    def fails(call, *args):
        with pytest.raises(OSError) as exc:
            call(*args)
        return exc.value.errno

    assert fails(ops.getattr, '/p1') == errno.ENOENT
    assert fails(ops.mkdir, '/.emu', 0o755) == errno.EPERM
    ops.mkdir('/p1', 0o755)
    assert fails(ops.mkdir, '/p1', 0o755) == errno.EEXIST
    assert fails(ops.mkdir, '/bad\nname', 0o755) == errno.EINVAL
    assert fails(ops.open, '/p1/bind', os.O_RDONLY) == errno.EACCES
    assert fails(ops.open, '/p1/id', os.O_WRONLY) == errno.EACCES
    assert ops.open('/p1/cpus', os.O_WRONLY | os.O_TRUNC) == 0
    assert fails(ops.read, '/p1/memory', 4096, 0, 0) == errno.EINVAL
    assert fails(ops.write, '/p1/memory', b'1G', 0, 0) == errno.EINVAL
    assert fails(ops.rmdir, '/p1/devices') == errno.EPERM
    assert fails(ops.create, '/p1/new', 0o644) == errno.EACCES
    assert ops.getattr('/.emu/p1/shutdown')['st_mode'] & 0o200
    assert '.emu' not in ops.readdir('/', None)
    ops.write('/p1/cpus', b'4\n', 0, 0)
    ops.write('/p1/memory', b'64M', 0, 0)
    outcome = {}

    def start():
        outcome['ret'] = ops.write('/p1/online', b'1\n', 0, 0)
    thread = threading.Thread(target=start)
    thread.start()
    time.sleep(0.1)
    assert thread.is_alive()
    assert ops.read('/p1/online', 10, 0, 0) == b'0\n'
    assert ops.read('/.emu/p1/state', 100, 0, 0) == b'started 1\nonline 0\n'
    thread.join(3)
    assert outcome == {'ret': 2}
    assert fails(ops.rmdir, '/p1') == errno.EBUSY
    assert fails(ops.write, '/p1/online', b'1', 0, 0) == errno.EBUSY
    ops.write('/.emu/p1/shutdown', b'x', 0, 0)
    ops.rmdir('/p1')


def test_a_hanging_start_blocks_until_boot_releases_it(monkeypatch):
    parkerfs = import_parkerfs(monkeypatch)
    model = parkerfs.make_model(FakeBackend(), delay=0.01, online_cap=5)
    ops = parkerfs.ParkerFS(model)
    ops.mkdir('/p1', 0o755)
    ops.write('/p1/cpus', b'4', 0, 0)
    ops.write('/p1/memory', b'128M', 0, 0)
    ops.write('/.emu/p1/hang', b'1', 0, 0)
    thread = threading.Thread(target=ops.write, args=('/p1/online', b'1', 0, 0))
    thread.start()
    time.sleep(0.5)  # well past the 10 ms boot delay
    assert thread.is_alive()
    assert ops.read('/.emu/p1/state', 100, 0, 0) == b'started 1\nonline 0\nerror hung in early boot (.emu hang)\n'
    ops.write('/.emu/p1/boot', b'1', 0, 0)
    thread.join(3)
    assert not thread.is_alive() and ops.read('/p1/online', 10, 0, 0) == b'1\n'


def test_simulator_never_boots_without_memory(monkeypatch):
    parkerfs = import_parkerfs(monkeypatch)
    model = parkerfs.make_model(FakeBackend(), delay=0.01, online_cap=0.3)
    model.mkdir('p1')
    model.write('p1', 'cpus', '4')
    assert errno_of(model.write, 'p1', 'online', '1') == errno.ETIMEDOUT


def test_sysfs_backend_skips_a_block_that_will_not_go_offline(host, monkeypatch):
    backend = SysfsBackend(host.root, offline_timeout=1)
    real = backend._offline_block

    def pinned(block):
        if block == 34:
            raise OSError(errno.EBUSY, 'offline did not finish within 1s')
        real(block)
    monkeypatch.setattr(backend, '_offline_block', pinned)
    assert backend.mem_alloc(1, 128 << 20) == 35 * (128 << 20)
    assert host.read('/sys/devices/system/memory/memory34/state') == 'online'
    assert host.read('/sys/devices/system/memory/memory35/state') == 'offline'
    with pytest.raises(OSError) as exc:
        backend.mem_alloc(1, 128 << 20)
    assert exc.value.errno == errno.ENOMEM and 'memory34' in str(exc.value)
