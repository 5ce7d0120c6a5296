"""Unit tests of the Parker kernfs emulator (tests/parker_emu/model.py).

Covers the RFC rules and errnos against FakeBackend, the cpus leak hazard, the
blocking start and the reads that block behind it, rmdir, the Parker CMA layout
rule and its GiB-unit accounting, bind keeping the host driver link, and
SysfsBackend against a FakeHost sysfs tree; the emulated boot and mount
(boot.py) and the state kept across unmount and mount. The FUSE adapter is
exercised without a mount when fusepy is importable.
"""
import errno
import json
import os
import shutil
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from parker_emu import boot as emuboot  # noqa: E402  pylint: disable=wrong-import-position
from parker_emu import model as emu  # noqa: E402  pylint: disable=wrong-import-position
from parker_emu.model import CmaAreas  # noqa: E402  pylint: disable=wrong-import-position
from parker_emu.model import FakeBackend, ParkerKernfs, SysfsBackend  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.parker.kernel.tests.unit.unit_helpers import import_parkerfs  # noqa: E402  pylint: disable=wrong-import-position


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
    # cpus, memory and id read at once; online and control_structure (of any partition) and
    # every mutating call wait for parker_mutex, as on the real kernel (issue 15 item 5)
    assert fs.read('p1', 'cpus') == '2-3\n'
    assert fs.read('p1', 'id') == '1\n'
    fs.on_start = None
    reads = {}

    def read(leaf):
        reads[leaf] = fs.read('p1', leaf)
    blocked = [threading.Thread(target=fs.mkdir, args=('p2',))]
    blocked += [threading.Thread(target=read, args=(leaf,)) for leaf in ('online', 'control_structure')]
    for waiter in blocked:
        waiter.start()
    time.sleep(0.3)
    assert all(waiter.is_alive() for waiter in blocked) and fs.names() == ['p1'] and reads == {}
    fs.instance_online('p1')
    thread.join(2)
    for waiter in blocked:
        waiter.join(2)
    assert outcome == {'ret': 2}
    assert reads == {'online': '1\n', 'control_structure': '0x%x\n' % emu.CONTROL_PAGE_BASE}
    assert fs.names() == ['p1', 'p2']


def test_blocked_reads_give_edeadlk_once_the_start_gave_up(backend):
    fs = ParkerKernfs(backend, online_wait_cap=0.5)
    ready(fs)
    started = time.time()   # before the start: on a loaded machine the sleep below can take longer than asked
    thread, outcome = start_in_thread(fs)
    time.sleep(0.1)
    assert errno_of(fs.read, 'p1', 'online') == errno.EDEADLK  # waited behind the start, then wedged
    assert time.time() - started >= 0.45   # the start gives up 0.5 s after it took the mutex, not before
    thread.join(2)
    assert outcome == {'errno': errno.ETIMEDOUT}
    assert errno_of(fs.read, 'p1', 'control_structure') == errno.EDEADLK
    assert fs.read('p1', 'cpus') == '2-3\n'
    fs.instance_online('p1')
    assert fs.read('p1', 'online') == '1\n'


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
    assert errno_of(fs.read, 'p1', 'online') == errno.EDEADLK  # a real kernel blocks the read forever
    assert fs.info('p1')['online'] is False
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
VIRTIO = {'0000:00:02.0': 'virtio_blk', '0000:00:03.0': 'virtio_blk', '0000:00:05.0': 'virtio_net', '0000:00:06.0': 'virtio_net'}


def virtio_bound(host, bdf):
    """Bind the virtio child of bdf in the FakeHost tree as a booted guest has it."""
    driver = VIRTIO[bdf]
    child = emu.virtio_children(host.root, bdf)[0]
    host.write('/sys/bus/virtio/drivers/%s/unbind' % driver, '')
    host.write('/sys/bus/virtio/drivers/%s/bind' % driver, '')
    host.write('/sys/bus/virtio/drivers_probe', '')
    host.symlink('/sys/devices/pci0000:00/%s/%s' % (bdf, child), '/sys/bus/virtio/devices/' + child)
    host.symlink('/sys/bus/virtio/drivers/' + driver, '/sys/devices/pci0000:00/%s/%s/driver' % (bdf, child))
    return child, driver


def virtio_unbound(host, bdf, child):
    """What the kernel does on that unbind: the driver link and the netdev or disk go."""
    base = '/sys/devices/pci0000:00/%s/%s' % (bdf, child)
    os.remove(host.path(base + '/driver'))
    for kind, where in (('net', '/sys/class/net/'), ('block', '/sys/block/')):
        path = host.path(base + '/' + kind)
        if os.path.isdir(path):
            for name in os.listdir(path):
                shutil.rmtree(os.path.join(path, name))
                os.remove(host.path(where + name))
                if kind == 'block' and os.path.lexists(host.path('/sys/class/block/' + name)):
                    os.remove(host.path('/sys/class/block/' + name))


def test_sysfs_backend(host):
    backend = SysfsBackend(host.root)
    virtio_bound(host, '0000:00:03.0')
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
    # Parker's pci_bus_type.remove() as a stock kernel allows: virtio-pci stays, virtio_blk lets go
    assert host.read('/sys/bus/virtio/drivers/virtio_blk/unbind') == 'virtio2'
    assert host.read('/sys/bus/pci/drivers/virtio-pci/unbind') == ''
    assert os.readlink(host.path('/sys/bus/pci/devices/0000:00:03.0/driver')).endswith('drivers/virtio-pci')
    assert not backend.pci_enabled('0000:00:03.0')
    assert errno_of(fs.write, 'p1', 'bind', '0000:00:03.0') == errno.EBUSY
    assert fs.devices('p1') == ['0000:00:03.0']
    virtio_unbound(host, '0000:00:03.0', 'virtio2')
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
    assert host.read('/sys/bus/virtio/drivers_probe') == 'virtio2'
    assert host.read('/sys/bus/pci/drivers_probe') == ''
    assert backend.detached == {}


def test_sysfs_backend_nic_returns_under_another_kernel_name(host):
    ran = []
    backend = SysfsBackend(host.root, run=ran.append)
    child, _driver = virtio_bound(host, '0000:00:06.0')
    backend.pci_detach('0000:00:06.0')
    assert host.read('/sys/bus/virtio/drivers/virtio_net/unbind') == child
    assert backend.detached['0000:00:06.0']['net'] == ['eth1']
    virtio_unbound(host, '0000:00:06.0', child)
    # state survives a daemon restart (the kernfs was unmounted and mounted again)
    again = SysfsBackend(host.root, run=ran.append)
    again.restore(json.loads(json.dumps(backend.state())))
    again.pci_reprobe('0000:00:06.0')
    # eth1 is held by a placeholder while the kernel names the returning NIC, so it gets another ethN
    assert ran == [['ip', 'tuntap', 'add', 'dev', 'eth1', 'mode', 'tap'], ['ip', 'tuntap', 'del', 'dev', 'eth1', 'mode', 'tap']]
    assert host.read('/sys/bus/virtio/drivers_probe') == child
    assert again.detached == {} and again.pci_enabled('0000:00:06.0')


def test_sysfs_backend_holds_a_bound_disk_open(host, monkeypatch):
    held, released = [], []
    backend = SysfsBackend(host.root)
    monkeypatch.setattr(backend, 'hold_disk', lambda disk: held.append(disk) or 4242)
    monkeypatch.setattr(backend, 'release_holder', released.append)
    virtio_bound(host, '0000:00:03.0')
    backend.pci_detach('0000:00:03.0')
    assert held == ['vdb'] and backend.detached['0000:00:03.0']['holders'] == [4242]
    virtio_unbound(host, '0000:00:03.0', 'virtio2')
    backend.pci_reprobe('0000:00:03.0')
    assert released == [4242]


def test_sysfs_backend_rebinds_remembered_driver(host):
    """A device that is not virtio: a stock kernel can only unbind its PCI driver."""
    backend = SysfsBackend(host.root)
    for child in emu.virtio_children(host.root, '0000:00:05.0'):
        shutil.rmtree(host.path('/sys/devices/pci0000:00/0000:00:05.0/' + child))
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
    reader = threading.Thread(target=lambda: outcome.setdefault('read', ops.read('/p1/online', 10, 0, 0)))
    reader.start()
    assert ops.read('/p1/cpus', 10, 0, 0) == b'4\n'  # does not take parker_mutex
    assert ops.read('/.emu/p1/state', 100, 0, 0) == b'started 1\nonline 0\n'
    time.sleep(0.05)
    assert reader.is_alive() and 'read' not in outcome  # online waits for the start, as on the kernel
    thread.join(3)
    reader.join(3)
    assert outcome == {'ret': 2, 'read': b'1\n'}
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


# -- Parker CMA areas (contract section 1) ------------------------------------------------------------
G = 1 << 30


def sizes(spec, nodes, failed=()):
    areas, _lines, _failed = emu.cma_layout(spec, nodes, failed)
    return dict((nid, size // G) for nid, (_base, size) in areas.items())


@pytest.mark.parametrize('spec, nodes, failed, expected', [
    # one node
    ('1G', [0], (), {0: 1}),
    ('4G', [0], (), {0: 4}),
    ('512M', [0], (), {0: 1}),
    ('2G', [0], (0,), {}),
    # two nodes: the contract's examples
    ('1G', [0, 1], (), {0: 1}),
    ('1G', [0, 1], (0,), {1: 1}),
    ('2G', [0, 1], (), {0: 1, 1: 1}),
    ('2G', [0, 1], (0,), {1: 1}),
    ('2G', [0, 1], (1,), {0: 1}),
    ('3G', [0, 1], (), {0: 2, 1: 2}),
    ('4G', [0, 1], (), {0: 2, 1: 2}),  # the fleet's default
    ('4G', [0, 1], (0,), {1: 2}),
    # four nodes
    ('4G', [0, 1, 2, 3], (), {0: 1, 1: 1, 2: 1, 3: 1}),
    ('4G', [0, 1, 2, 3], (1,), {0: 1, 2: 1, 3: 1}),
    ('2G', [0, 1, 2, 3], (), {0: 1, 1: 1}),
    ('2G', [0, 1, 2, 3], (0,), {1: 1, 2: 1}),
    ('1G', [0, 1, 2, 3], (0, 1, 2), {3: 1}),
    ('8G', [0, 1, 2, 3], (2,), {0: 2, 1: 2, 3: 2}),
    # per-node form: order given, rounded up, shares under 1 GiB dropped, failing nodes skipped
    ('0:8G,1:512M', [0, 1], (), {0: 8}),
    ('1:2G,0:1G', [0, 1], (), {1: 2, 0: 1}),
    ('1:2G,0:1G', [0, 1], (1,), {0: 1}),
    ('0:1536M', [0, 1], (), {0: 2}),
    ('3:1G', [0, 1], (), {}),
])
def test_cma_layout_rule(spec, nodes, failed, expected):
    assert sizes(spec, nodes, failed) == expected


def test_cma_layout_log_lines():
    areas, lines, failed = emu.cma_layout('2G', [0, 1], failed=[0])
    assert failed == [0] and list(areas) == [1]
    assert lines == ['parker: reserve CMA 2048 MiB, up to 1024 MiB per node',
                     'cma: Failed to reserve 1024 MiB on node 0',
                     'parker: node 0 reservation failed, err -12',
                     'cma: Reserved 1024 MiB at 0x0000000100000000 on node 1',
                     'parker: reserved 1024 MiB on node 1']
    areas, lines, _failed = emu.cma_layout('4G', [0, 1], bases={0: 0x140000000, 1: 0x1c0000000})
    assert areas == {0: (0x140000000, 2 * G), 1: (0x1c0000000, 2 * G)}
    assert lines[1] == 'cma: Reserved 2048 MiB at 0x0000000140000000 on node 0'
    assert emu.cma_layout('1G', [0], failed=[0])[1][-1] == 'No parker CMA regions allocated, disabling parker.'
    assert 'below 1024 MiB, dropped' in emu.cma_layout('0:512M,1:1G', [0, 1])[1][0]
    with pytest.raises(ValueError):
        emu.cma_layout('x:1G', [0])


def cma_fs(areas, backend=None):
    changes = []
    cma = emu.CmaAreas(areas, on_change=lambda area: changes.append((area.name, area.used)))
    fs = ParkerKernfs(backend or FakeBackend(areas={0: [(0x100000000, 1 << 30)], 1: [(0x140000000, 1 << 30)]}),
                      online_wait_cap=5, cma=cma)
    return fs, cma, changes


def test_memory_uses_whole_gib_units_of_the_first_cpus_node():
    fs, cma, changes = cma_fs({1: (0x1c0000000, 2 * G)})
    area = cma.get(1)
    ready(fs, 'p1', cpus='5', memory='128M')
    ready(fs, 'p2', cpus='6', memory='128M')
    assert area.units == [True, True] and area.used == 2 * G // 4096
    # the fleet's two 128M partitions on node 1 fit; a third does not, though only 256M are in use
    fs.mkdir('p3')
    fs.write('p3', 'cpus', '7')
    assert errno_of(fs.write, 'p3', 'memory', '128M') == errno.ENOMEM
    assert area.alloc_fail == (128 << 20) // 4096 and area.alloc_success == 2 * (128 << 20) // 4096
    # node 0 has no area: ENOMEM, whatever the host has free
    ready(fs, 'p0', cpus='2', memory=None)
    assert errno_of(fs.write, 'p0', 'memory', '1M') == errno.ENOMEM
    # rmdir gives the unit back and counts the release
    fs.rmdir('p1')
    assert area.units == [False, True] and area.release_success == (128 << 20) // 4096
    fs.write('p3', 'memory', '128M')
    assert fs.read('p3', 'memory').startswith('134217728@0x')
    assert changes[-1] == ('parker1', 2 * G // 4096)
    view = area.view()
    assert view['debugfs'] == {'base_pfn': 0x1c0000000 // 4096, 'count': 2 * G // 4096, 'used': 2 * G // 4096,
                               'order_per_bit': 18}
    assert view['sysfs'] == {'alloc_pages_success': 3 * 32768, 'alloc_pages_fail': 32768,
                             'release_pages_success': 32768}


def test_memory_units_round_up_and_a_rewrite_releases_first():
    fs, cma, _changes = cma_fs({0: (0x100000000, 2 * G)}, FakeBackend(areas={0: [(0x100000000, 4 * G)]}))
    ready(fs, 'p1', cpus='1', memory=None)
    assert errno_of(fs.write, 'p1', 'memory', '3G') == errno.ENOMEM  # more units than the area has
    fs.write('p1', 'memory', '%d' % (G + 1))  # 2 units, the host still gives 1G + 1 byte
    assert cma.get(0).units == [True, True]
    fs.write('p1', 'memory', '512M')  # released first, so it fits again
    assert cma.get(0).units == [True, False]
    assert cma.get(0).release_success == (G + 1) // 4096


def test_memory_host_failure_gives_the_units_back():
    backend = FakeBackend(areas={1: [(0x140000000, 64 << 20)]})
    fs, cma, _changes = cma_fs({1: (0x1c0000000, 1 * G)}, backend)
    ready(fs, 'p1', cpus='5', memory=None)
    assert errno_of(fs.write, 'p1', 'memory', '128M') == errno.ENOMEM  # pinned pages, as in section 2.8
    assert cma.get(1).units == [False] and cma.get(1).alloc_fail == 32768
    fs.write('p1', 'memory', '64M')
    assert cma.get(1).units == [True]


def test_state_survives_a_remount():
    fs, cma, _changes = cma_fs({1: (0x1c0000000, 2 * G)})
    ready(fs, 'p1', cpus='5', memory='128M', bdf='0000:00:03.0')
    fs.mkdir('p2')
    state = fs.state()
    fs2 = ParkerKernfs(fs.backend, cma=emu.CmaAreas({1: (0x1c0000000, 2 * G)}))
    fs2.restore(state)
    assert fs2.names() == ['p1', 'p2']
    assert fs2.read('p1', 'memory') == fs.read('p1', 'memory')
    assert fs2.read('p1', 'control_structure') == fs.read('p1', 'control_structure')
    assert fs2.devices('p1') == ['0000:00:03.0'] and fs2.cma.get(1).units == [True, False]
    fs2.mkdir('p3')
    assert int(fs2.read('p3', 'control_structure'), 16) > int(fs.read('p2', 'control_structure'), 16)
    fs2.rmdir('p1')
    assert fs2.cma.get(1).units == [False, False]


# -- the emulated boot, mount.parker and the state kept across mounts (boot.py) --------------------------


@pytest.fixture
def config(host, tmp_path, monkeypatch):
    monkeypatch.setattr(emuboot, 'KMSG', str(tmp_path / 'kmsg'))
    host.write('/proc/sys/kernel/random/boot_id', 'boot-1')
    views = {'sysfs': str(tmp_path / 'mm-cma'), 'debugfs': str(tmp_path / 'debug-cma'), 'errors': []}

    def setup_views(_config, _record):
        for path in (views['sysfs'], views['debugfs']):
            os.makedirs(path, exist_ok=True)
        return dict(views)
    monkeypatch.setattr(emuboot, 'setup_views', setup_views)
    return dict(emuboot.DEFAULTS, sysroot=host.root, state_dir=str(tmp_path / 'state'), root=str(tmp_path / 'parker'),
                parker_cma='2G', cma_failed_nodes=[0])


def test_boot_lays_out_logs_and_shows_the_areas(config, tmp_path):
    record = emuboot.boot(config)
    # FakeHost memory blocks end at 36 x 128M: the areas start at the next GiB, 5G
    assert record['areas'] == {'1': [5 * G, G]} and record['failed'] == [0] and record['registered']
    assert (tmp_path / 'kmsg').read_text().splitlines() == [
        '<14>parker: reserve CMA 2048 MiB, up to 1024 MiB per node',
        '<11>cma: Failed to reserve 1024 MiB on node 0',
        '<11>parker: node 0 reservation failed, err -12',
        '<14>cma: Reserved 1024 MiB at 0x0000000140000000 on node 1',
        '<14>parker: reserved 1024 MiB on node 1']
    assert sorted(os.listdir(tmp_path / 'mm-cma')) == ['parker1']
    assert (tmp_path / 'mm-cma' / 'parker1' / 'alloc_pages_success').read_text() == '0\n'
    assert (tmp_path / 'debug-cma' / 'parker1' / 'count').read_text() == '%d\n' % (G // 4096)
    assert (tmp_path / 'debug-cma' / 'parker1' / 'base_pfn').read_text() == '%d\n' % (5 * G // 4096)
    assert os.path.isdir(config['root']) and os.listdir(config['root']) == []  # the empty mount point
    # once per boot: a second call logs nothing and keeps the layout
    (tmp_path / 'kmsg').write_text('')
    assert emuboot.boot(config) == json.loads(open(emuboot.boot_path(config)).read())
    assert (tmp_path / 'kmsg').read_text() == ''
    # a new (emulated or guest) boot starts without partitions
    emuboot.write_json(emuboot.kernfs_path(config), {'partitions': []})
    emuboot.boot(dict(config, cma_failed_nodes=[]), force=True)
    assert not os.path.exists(emuboot.kernfs_path(config))
    assert 'parker: reserved 1024 MiB on node 0' in (tmp_path / 'kmsg').read_text()


def test_no_area_means_no_kernfs(config):
    record = emuboot.boot(dict(config, parker_cma='1G', cma_failed_nodes=[0, 1]))
    assert not record['registered'] and record['lines'][-1] == 'No parker CMA regions allocated, disabling parker.'
    status, message = emuboot.mount(dict(config, parker_cma='1G', cma_failed_nodes=[0, 1]), config['root'])
    assert status == 32 and "unknown filesystem type 'parker'" in message


class Systemd:
    def __init__(self, emuboot_module, monkeypatch, mount_works=True):
        self.mounted = set()
        self.active = set()
        self.calls = []
        self.mount_works = mount_works
        monkeypatch.setattr(emuboot_module, 'is_mounted', lambda path: path in self.mounted)
        monkeypatch.setattr(emuboot_module, 'unit_name', lambda root: 'parker-emu@%s.service' % root.strip('/').replace('/', '-'))
        monkeypatch.setattr(emuboot_module, 'unit_active', lambda unit: unit in self.active)
        monkeypatch.setattr(emuboot_module.subprocess, 'run', self.run)
        monkeypatch.setattr(emuboot_module.time, 'sleep', lambda _s: None)
        self.root = None

    def run(self, argv, **_kwargs):
        self.calls.append(list(argv))
        if argv[:2] == ['systemctl', 'start']:
            if self.mount_works:
                self.active.add(argv[2])
                self.mounted.add(self.root)
        if argv[0] == 'umount':
            self.mounted.discard(argv[1])
            self.active.clear()

        class Done:
            returncode = 0
            stdout = 'journal lines'
        return Done()


def test_mount_starts_the_daemon_and_a_second_mount_is_busy(config, monkeypatch):
    systemd = Systemd(emuboot, monkeypatch)
    root = systemd.root = config['root']
    assert emuboot.mount(config, root) == (0, '')
    assert ['systemctl', 'start', 'parker-emu@%s.service' % root.strip('/').replace('/', '-')] in systemd.calls
    status, message = emuboot.mount(config, root)
    assert status == 32 and 'EBUSY' in message
    assert emuboot.mount(config, '/sys/fs/parker')[0] == 32  # only the configured root is emulated
    assert emuboot.unmount(config) == 0 and root not in systemd.mounted
    assert emuboot.mount(config, root) == (0, '')


def test_mount_reports_a_daemon_that_does_not_mount(config, monkeypatch):
    systemd = Systemd(emuboot, monkeypatch, mount_works=False)
    systemd.root = config['root']
    status, message = emuboot.mount(config, config['root'], timeout=0.01)
    assert status == 32 and 'did not mount' in message


def test_mount_helper_argv(config, monkeypatch):
    seen = []
    monkeypatch.setattr(emuboot, 'load_config', lambda _path: config)
    monkeypatch.setattr(emuboot, 'mount', lambda _config, root: seen.append(root) or (0, ''))
    # mount(8) runs: /sbin/mount.parker none /run/parker -o rw
    assert emuboot.main(['--config', '/etc/x.json', 'mount', 'none', '/run/parker', '-o', 'rw']) == 0
    assert seen == ['/run/parker']


def test_kernfs_state_survives_unmount_and_mount(config, monkeypatch, tmp_path):
    parkerfs = import_parkerfs(monkeypatch)
    record = emuboot.boot(dict(config, cma_failed_nodes=[]))
    views = emuboot.Views(record['views']['sysfs'], record['views']['debugfs'])

    backend = FakeBackend()  # the host: its state outlives the daemon

    def daemon():
        cma = CmaAreas(dict((int(n), tuple(a)) for n, a in record['areas'].items()), on_change=views.update)
        model = parkerfs.make_model(backend, delay=0.01, online_cap=2, cma=cma)
        saver = parkerfs.Saver(emuboot.kernfs_path(config), model, backend, record)
        loaded = saver.load()
        model.on_change = saver
        return model, loaded
    model, loaded = daemon()
    assert not loaded
    model.mkdir('p1')
    model.write('p1', 'cpus', '5')
    model.write('p1', 'memory', '128M')
    model.write('p1', 'bind', '0000:00:03.0')
    parkerfs.ParkerFS(model).write('/.emu/p1/hang', b'1', 0, 0)
    assert (tmp_path / 'mm-cma' / 'parker1' / 'alloc_pages_success').read_text() == '32768\n'
    assert (tmp_path / 'debug-cma' / 'parker1' / 'used').read_text() == '262144\n'
    # the daemon exits at umount; the next mount's daemon reattaches the partition
    again, loaded = daemon()
    assert loaded and again.names() == ['p1'] and again.devices('p1') == ['0000:00:03.0']
    assert again.read('p1', 'memory') == model.read('p1', 'memory')
    assert again.cma.get(1).units == [True] and again.simulator.hanging == {'p1'}
    again.rmdir('p1')
    assert (tmp_path / 'debug-cma' / 'parker1' / 'used').read_text() == '0\n'
    assert (tmp_path / 'mm-cma' / 'parker1' / 'release_pages_success').read_text() == '32768\n'
    # another boot: the saved state is not reattached
    emuboot.write_json(emuboot.kernfs_path(config), dict(json.load(open(emuboot.kernfs_path(config))), boot_id='boot-0'))
    assert daemon()[1] is False


def test_views_shim_keeps_real_entries(tmp_path, monkeypatch):
    """A missing cma/ under a pseudo filesystem: tmpfs over the parent, real entries bound back."""
    parent = tmp_path / 'mm'
    (parent / 'ksm').mkdir(parents=True)
    (parent / 'flag').write_text('1\n')
    ran = []
    monkeypatch.setattr(emuboot, 'top_mount', lambda path: None)
    monkeypatch.setattr(emuboot, 'run', ran.append)
    real = {}

    def fake_run(argv):
        ran.append(argv)
        if argv[:2] == ['mount', '--bind'] and argv[2] == str(parent):
            for name in os.listdir(parent):
                real[name] = os.path.isdir(os.path.join(parent, name))
                os.makedirs(argv[3], exist_ok=True)
                (os.mkdir if real[name] else (lambda p: open(p, 'w').close()))(os.path.join(argv[3], name))
        if argv[:3] == ['mount', '-t', 'tmpfs'] and argv[-1] == str(parent):
            for name in os.listdir(parent):
                path = os.path.join(parent, name)
                os.rmdir(path) if os.path.isdir(path) else os.remove(path)
    monkeypatch.setattr(emuboot, 'run', fake_run)
    emuboot.cma_dir(str(parent / 'cma'), str(tmp_path / 'hidden'))
    assert sorted(os.listdir(parent)) == ['cma', 'flag', 'ksm']
    assert ['mount', '--make-private', str(tmp_path / 'hidden')] in ran
    assert ['mount', '--bind', str(tmp_path / 'hidden' / 'ksm'), str(parent / 'ksm')] in ran
    assert ran[-1] == ['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'parker-emu', str(parent / 'cma')]


def test_rmdir_succeeds_when_the_host_took_a_block_back_behind_parkers_back(tmp_path):
    """cma_release() reports nothing: a block the host onlined meanwhile must not fail the rmdir."""
    from ansible_collections.parker.kernel.tests.unit.fakehost import FakeHost
    host = FakeHost(tmp_path / 'root').build()
    backend = SysfsBackend(root=host.root)
    base = backend.mem_alloc(1, 128 << 20)
    block = base // (128 << 20)
    host.write('/sys/devices/system/memory/memory%d/state' % block, 'online')
    backend.mem_release(base, 128 << 20)
    assert host.read('/sys/devices/system/memory/memory%d/state' % block) == 'online'
