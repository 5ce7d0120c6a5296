"""State machine of ByteDance's Parker kernfs (/sys/fs/parker), RFC v1, for tests.

Emulated (parker-interface.md sections 2.2-2.8, issue 15): partitions made by mkdir
under the root, the files id, control_structure, cpus, memory, bind, unbind and
online, the devices/ subdirectory, rmdir, the errno of every refusal, the blocking
start under the global parker_mutex (reads of online and control_structure block
behind it too), the single-use partition, the Parker CMA areas (cma_layout(): the
parker_cma= rule with nodes whose reservation fails, the boot log lines, 1 GiB
bitmap units and the CMA sysfs counters, CmaAreas), and the hazards seen on a real
Boot Kernel: a malformed or rewritten ``cpus`` leaks CPUs that stay offline in the
host, the host may online a partition CPU behind Parker's back, and the host driver
symlink of a bound device stays in place (FakeBackend, and SysfsBackend for virtio
devices: see there).

Not emulated: the control page contents (APIC IDs, PCI ids), INIT/SIPI and
machine_kexec (an "instance simulator" calls instance_online()/instance_shutdown()
instead), the NULL dereference when the host unbinds a claimed device
(FakeBackend.host_unbind() only records it), ``enable`` reading 0 after bind, and
where the memory comes from: the CMA areas are bookkeeping over synthetic
addresses (the guests are too small for real 1 GiB areas, and a stock Debian kernel
has CONFIG_CMA off), while the ``memory`` file reports the base of the host memory
blocks that SysfsBackend really offlined, which lies outside the area's
base_pfn..base_pfn+count. /proc/meminfo CmaTotal/CmaFree stay 0. The kernel log,
sysfs and debugfs views of the areas are written by boot.py, not here.

This module is pure: no I/O of its own. Host effects go through a Backend:
FakeBackend keeps them in memory, SysfsBackend performs what a stock kernel can
do under a sysfs root (CPU and memory-block hotplug, virtio unbind and re-probe).
Standalone on purpose: it runs inside a guest without the collection installed.
"""

import contextlib
import errno
import os
import re
import subprocess
import threading

PARKER_MAX_CPUS = 512
PARKER_MAX_PCI_DEVICES = 256
# The real spin loop has no timeout. The emulator gives up after this many seconds,
# returns ETIMEDOUT to the writer and stays "wedged" (see ParkerKernfs.start).
ONLINE_WAIT_CAP = 600.0
PAGE_SIZE = 4096
# First fake control-page address; the value a real Boot Kernel showed (section 2.8).
CONTROL_PAGE_BASE = 0x1417d9000
PARTITION_FILES = ('bind', 'control_structure', 'cpus', 'id', 'memory', 'online', 'unbind')

_SUFFIX = {'': 0, 'K': 10, 'M': 20, 'G': 30, 'T': 40, 'P': 50, 'E': 60}
_MEMPARSE = re.compile(r'^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([KkMmGgTtPpEe]?)$')
_GROUP = re.compile(r'^(\d+|N)(?:-(\d+|N))?(?::(\d+)/(\d+))?$')
_BDF = re.compile(r'^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$')


def oserror(code, what):
    return OSError(code, '%s: %s' % (os.strerror(code), what))


def parse_cpulist(text, nbits):
    """bitmap_parselist(): return a set of CPUs or raise ValueError (malformed) / OverflowError (>= nbits)."""
    text = text.strip()
    cpus = set()
    if not text:
        return cpus
    for group in text.split(','):
        group = group.strip()
        if group == 'all' or group.startswith('all:'):
            group = '0-N' + group[3:]
        match = _GROUP.match(group)
        if not match:
            raise ValueError('malformed cpulist group %r' % group)
        start, end, used, size = match.groups()
        start = nbits - 1 if start == 'N' else int(start)
        end = start if end is None else (nbits - 1 if end == 'N' else int(end))
        if end < start:
            raise ValueError('range %r runs backwards' % group)
        if used is not None and match.group(2) is None:
            raise ValueError('a stride needs a range: %r' % group)
        used, size = (1, 1) if used is None else (int(used), int(size))
        if size == 0 or used > size:
            raise ValueError('bad stride in %r' % group)
        if end >= nbits:
            raise OverflowError('CPU %d beyond nr_cpu_ids %d' % (end, nbits))
        for base in range(start, end + 1, size):
            cpus.update(range(base, min(base + used, end + 1)))
    return cpus


def format_cpulist(cpus):
    """%*pbl: ascending ranges, e.g. 2-3,8."""
    out, run = [], []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append('%d-%d' % (run[0], run[-1]) if len(run) > 1 else '%d' % run[0])
        run = [cpu]
    if run:
        out.append('%d-%d' % (run[0], run[-1]) if len(run) > 1 else '%d' % run[0])
    return ','.join(out)


def memparse(text):
    """memparse() followed by the RFC's check that only a newline may follow."""
    body = text[:-1] if text.endswith('\n') else text
    match = _MEMPARSE.fullmatch(body)
    if not match:
        raise ValueError('malformed size %r' % text)
    return int(match.group(1), 0) << _SUFFIX[match.group(2).upper()]


def parse_bdf(text):
    body = text.strip()
    match = _BDF.fullmatch(body)
    if not match:
        raise ValueError('malformed PCI name %r' % text)
    return body.lower()


GIB = 1 << 30
MIB = 1 << 20
# order_per_bit = 30 - PAGE_SHIFT: one bitmap bit per GiB (section 2.2).
CMA_ORDER_PER_BIT = 30 - 12
PAGES_PER_UNIT = GIB // PAGE_SIZE


def parse_parker_cma(text):
    """parker_cma=SIZE or parker_cma=N:SIZE[,N:SIZE...]: ('size', bytes) or ('nodes', [(nid, bytes), ...])."""
    text = str(text).strip()
    if ':' not in text:
        return 'size', memparse(text)
    shares = []
    for item in text.split(','):
        nid, _colon, size = item.partition(':')
        if not nid.strip().isdigit():
            raise ValueError('malformed parker_cma share %r' % item)
        shares.append((int(nid), memparse(size.strip())))
    return 'nodes', shares


def _roundup_gib(size):
    return -(-size // GIB) * GIB


def cma_layout(spec, nodes, failed=(), bases=None, start=4 * GIB):
    """parker_early_cma() as the RFC lays the areas out (contract section 1).

    spec: the parker_cma= value; nodes: the online NUMA node ids; failed: nodes whose
    cma_declare_contiguous_nid() fails (no free 1 GiB-aligned GiB); bases: {nid: base}
    for the areas that get one (default: consecutive from ``start``, 1 GiB-aligned, in node order).
    Returns (areas {nid: size}, log lines in boot order, failed nodes tried).
    """
    nodes, failed = sorted(set(nodes)), set(failed)
    kind, value = parse_parker_cma(spec)
    lines, areas, tried_failed = [], {}, []
    if kind == 'size':
        per = _roundup_gib((value + max(1, len(nodes)) - 1) // max(1, len(nodes)))   # ceil(value / nodes)
        plan = [(nid, per) for nid in nodes]
        target = value
        lines.append('parker: reserve CMA %d MiB, up to %d MiB per node' % (value // MIB, per // MIB))
    else:
        plan, target = [], None
        for nid, size in value:
            if size < GIB:
                lines.append('parker: node %d: CMA size %d MiB is below 1024 MiB, dropped' % (nid, size // MIB))
            elif nid not in nodes:
                lines.append('parker: node %d is not online, dropped' % nid)
            else:
                plan.append((nid, _roundup_gib(size)))
        lines.append('parker: reserve CMA %d MiB, up to %d MiB per node'
                     % (sum(s for _n, s in plan) // MIB, max([s for _n, s in plan] or [0]) // MIB))
    next_base = start
    total = 0
    for nid, size in plan:
        if target is not None and total >= target:
            break
        if nid in failed:
            lines.append('cma: Failed to reserve %d MiB on node %d' % (size // MIB, nid))
            lines.append('parker: node %d reservation failed, err -12' % nid)
            tried_failed.append(nid)
            continue
        base = (bases or {}).get(nid, next_base)
        next_base = max(next_base, base + size)
        areas[nid] = (base, size)
        total += size
        lines.append('cma: Reserved %d MiB at 0x%016x on node %d' % (size // MIB, base, nid))
        lines.append('parker: reserved %d MiB on node %d' % (size // MIB, nid))
    if not areas:
        lines.append('No parker CMA regions allocated, disabling parker.')
    return areas, lines, tried_failed


class CmaArea:
    """One parker<nid> area: a bitmap of 1 GiB units and the CMA sysfs counters (pages)."""

    def __init__(self, nid, base, size):
        self.nid = nid
        self.name = 'parker%d' % nid
        self.base = base
        self.units = [False] * (size // GIB)
        self.alloc_success = self.alloc_fail = self.release_success = 0

    @property
    def count(self):
        return len(self.units) * PAGES_PER_UNIT

    @property
    def used(self):
        return sum(self.units) * PAGES_PER_UNIT

    def take(self, size):
        """First fit of ceil(size / 1 GiB) free units: the first unit's index, or None."""
        need = -(-size // GIB)
        for start in range(len(self.units) - need + 1):
            if not any(self.units[start:start + need]):
                self.units[start:start + need] = [True] * need
                return start
        return None

    def give_back(self, start, size):
        need = -(-size // GIB)
        self.units[start:start + need] = [False] * need

    def view(self):
        """The files a kernel shows: sysfs /sys/kernel/mm/cma/<name>/ and debugfs cma/<name>/."""
        return {'sysfs': {'alloc_pages_success': self.alloc_success, 'alloc_pages_fail': self.alloc_fail,
                          'release_pages_success': self.release_success},
                'debugfs': {'base_pfn': self.base // PAGE_SIZE, 'count': self.count, 'used': self.used,
                            'order_per_bit': CMA_ORDER_PER_BIT}}

    def to_state(self):
        return {'nid': self.nid, 'base': self.base, 'units': self.units, 'counters':
                [self.alloc_success, self.alloc_fail, self.release_success]}

    @classmethod
    def from_state(cls, state):
        area = cls(state['nid'], state['base'], len(state['units']) * GIB)
        area.units = list(state['units'])
        area.alloc_success, area.alloc_fail, area.release_success = state['counters']
        return area


class CmaAreas:
    """The Boot Kernel's parker_cma[] array: {nid: CmaArea}; on_change(area) after every count change."""

    def __init__(self, areas=None, on_change=None):
        self.areas = dict((nid, CmaArea(nid, base, size)) for nid, (base, size) in (areas or {}).items())
        self.on_change = on_change

    def get(self, nid):
        return self.areas.get(nid)

    def changed(self, area):
        if self.on_change:
            self.on_change(area)


def virtio_children(root, bdf):
    """The virtio devices (virtio<N>) a virtio-pci function carries, under sysfs root ``root``."""
    path = os.path.join(root, 'sys/bus/pci/devices', bdf)
    try:
        return sorted(name for name in os.listdir(path) if re.fullmatch(r'virtio[0-9]+', name))
    except OSError:
        return []


class Backend:
    """Host-side effects of the Parker kernfs. Methods raise OSError on failure."""

    def nr_cpu_ids(self):
        raise NotImplementedError

    def cpu_is_online(self, cpu):
        raise NotImplementedError

    def cpu_offline(self, cpu):
        """remove_cpu()."""
        raise NotImplementedError

    def cpu_online(self, cpu):
        """add_cpu()."""
        raise NotImplementedError

    def cpu_node(self, cpu):
        raise NotImplementedError

    def mem_alloc(self, node, size):
        """cma_alloc() from the node's area: return the physical base or raise ENOMEM."""
        raise NotImplementedError

    def mem_release(self, base, size):
        """cma_release()."""
        raise NotImplementedError

    def pci_exists(self, bdf):
        raise NotImplementedError

    def pci_enabled(self, bdf):
        """True while a host driver uses the device (pci_is_enabled())."""
        raise NotImplementedError

    def pci_detach(self, bdf):
        """pci_bus_type.remove(): stop the host driver, keep the device in the PCI tree."""
        raise NotImplementedError

    def pci_reprobe(self, bdf):
        """pci_bus_type.probe(): let host drivers take the device again."""
        raise NotImplementedError

    def kexec_loaded(self):
        raise NotImplementedError

    def state(self):
        """What a later daemon needs to undo this one's host effects (JSON-able)."""
        return {}

    def restore(self, state):
        pass


class FakeBackend(Backend):
    """In-memory host for unit tests.

    cpus: {cpu: node}; blocks: {node: [(base, size), ...]} free memory areas;
    devices: {bdf: driver or None}. CPU 0 cannot be offlined (x86 since 2023).
    """

    def __init__(self, cpus=None, areas=None, devices=None, kexec_loaded=True):
        self.nodes = dict(cpus if cpus is not None else {c: c // 4 for c in range(8)})
        self.online = set(self.nodes)
        areas = areas or {0: [(0x100000000, 1 << 30)], 1: [(0x140000000, 1 << 30)]}
        self.areas = {node: list(spans) for node, spans in areas.items()}
        self.allocated = {}
        devices = devices if devices is not None else {'0000:00:03.0': 'virtio-pci', '0000:00:05.0': 'virtio-pci',
                                                       '0000:00:00.0': None}
        self.drivers = dict(devices)
        self.detached = set()
        self.loaded = kexec_loaded
        self.log = []
        self.oopses = []

    def nr_cpu_ids(self):
        return max(self.nodes) + 1

    def cpu_is_online(self, cpu):
        return cpu in self.online

    def cpu_offline(self, cpu):
        if cpu == 0:
            raise oserror(errno.EPERM, 'CPU 0 cannot be offlined')
        self.online.discard(cpu)
        self.log.append(('offline', cpu))

    def cpu_online(self, cpu):
        self.online.add(cpu)
        self.log.append(('online', cpu))

    def cpu_node(self, cpu):
        return self.nodes[cpu]

    def mem_alloc(self, node, size):
        spans = self.areas.get(node, [])
        for index, (base, length) in enumerate(spans):
            if length >= size:
                spans[index] = (base + size, length - size)
                self.allocated[base] = (node, size)
                self.log.append(('alloc', node, base, size))
                return base
        raise oserror(errno.ENOMEM, 'no %d bytes on node %d' % (size, node))

    def mem_release(self, base, size):
        node, length = self.allocated.pop(base)
        merged = []
        for start, span in sorted(self.areas[node] + [(base, length)]):
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + span)
            elif span:
                merged.append((start, span))
        self.areas[node] = merged
        self.log.append(('release', base, size))

    def pci_exists(self, bdf):
        return bdf in self.drivers

    def pci_enabled(self, bdf):
        return self.drivers.get(bdf) is not None and bdf not in self.detached

    def pci_detach(self, bdf):
        # Faithful to section 2.8: the driver symlink (self.drivers) stays in place.
        self.detached.add(bdf)
        self.log.append(('detach', bdf))

    def pci_reprobe(self, bdf):
        self.detached.discard(bdf)
        self.log.append(('reprobe', bdf))

    def kexec_loaded(self):
        return self.loaded

    def host_unbind(self, bdf):
        """The host writes bdf to driver/unbind. On a claimed device a real Boot Kernel oopsed."""
        if bdf in self.detached:
            self.oopses.append('BUG: kernel NULL pointer dereference in pci_device_remove (%s)' % bdf)
            raise oserror(errno.EIO, 'host unbind of a Parker-claimed device crashes the Boot Kernel')
        self.drivers[bdf] = None


class SysfsBackend(Backend):
    """Host effects a stock kernel can perform, through the sysfs under ``root``.

    Memory: offlines a contiguous run of online Movable memory blocks of the node
    (rounded up to the block size), trying the next run when a block will not go
    offline in time, and reports the lowest block's base; release onlines them with
    online_movable.

    PCI, as close to Parker's pci_bus_type.remove() as a stock kernel allows (issue 15
    item 4): a virtio device stays bound to virtio-pci (its ``driver`` symlink stays)
    and only its virtio child is unbound from virtio_net/virtio_blk, so the netdev or
    disk leaves the host. ``enable`` is not touched (it stays 1, where Parker's reads 0:
    writing 0 under a bound virtio-pci would clear bus mastering, which a later
    virtio_net probe does not set again). A device without virtio children is really
    unbound from its PCI driver (its symlink goes; a stock kernel cannot do better).
    Re-probe binds the children again. Names change on return where a stock kernel
    lets them (issue 15 item 6): a NIC that had a kernel name ethN gets another one
    (a tap placeholder holds ethN during the probe; udev .link files still rename it,
    as fab1/fab2), and a disk is held open from bind to re-probe so virtio_blk cannot
    reuse its index (vdb comes back as vdc).
    """

    def __init__(self, root='/', offline_timeout=15.0, run=None):
        self.root = root
        self.offline_timeout = offline_timeout
        self.taken = {}
        self.remembered = {}
        self.detached = {}  # bdf: what pci_detach() undid, for pci_reprobe()
        self.run = run or self._run

    @staticmethod
    def _run(argv):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)

    def state(self):
        return {'taken': dict((str(base), blocks) for base, blocks in self.taken.items()),
                'remembered': self.remembered, 'detached': self.detached}

    def restore(self, state):
        self.taken = dict((int(base), blocks) for base, blocks in state.get('taken', {}).items())
        self.remembered = dict(state.get('remembered', {}))
        self.detached = dict(state.get('detached', {}))

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip('/'))

    def read(self, rel):
        with open(self.path(rel), encoding='ascii') as handle:
            return handle.read().strip()

    def write(self, rel, value):
        with open(self.path(rel), 'w', encoding='ascii') as handle:
            handle.write(value)

    def nr_cpu_ids(self):
        return max(parse_cpulist(self.read('/sys/devices/system/cpu/possible'), 1 << 16)) + 1

    def cpu_is_online(self, cpu):
        rel = '/sys/devices/system/cpu/cpu%d/online' % cpu
        if not os.path.exists(self.path(rel)):
            return os.path.isdir(self.path('/sys/devices/system/cpu/cpu%d' % cpu))
        return self.read(rel) == '1'

    def cpu_offline(self, cpu):
        self.write('/sys/devices/system/cpu/cpu%d/online' % cpu, '0')

    def cpu_online(self, cpu):
        self.write('/sys/devices/system/cpu/cpu%d/online' % cpu, '1')

    def cpu_node(self, cpu):
        # cpuN/nodeM stays while the CPU is offline; x86 drops offline CPUs from node cpulists,
        # and Parker reads the node after its cpus write has offlined them.
        cpu_dir = self.path('/sys/devices/system/cpu/cpu%d' % cpu)
        if os.path.isdir(cpu_dir):
            for name in os.listdir(cpu_dir):
                if name.startswith('node') and name[4:].isdigit():
                    return int(name[4:])
        base = '/sys/devices/system/node'
        for name in sorted(os.listdir(self.path(base))):
            if name.startswith('node') and name[4:].isdigit():
                if cpu in parse_cpulist(self.read('%s/%s/cpulist' % (base, name)), 1 << 16):
                    return int(name[4:])
        return 0

    def _movable_online_blocks(self, node):
        rel = '/sys/devices/system/node/node%d' % node
        blocks = []
        for name in os.listdir(self.path(rel)):
            if not (name.startswith('memory') and name[6:].isdigit()):
                continue
            block = '/sys/devices/system/memory/' + name
            try:
                state = self.read(block + '/state')
                zones = self.read(block + '/valid_zones')
            except OSError:
                continue
            if state.startswith('online') and 'Movable' in zones.split():
                blocks.append(int(name[6:]))
        return sorted(blocks)

    def mem_alloc(self, node, size):
        block_size = int(self.read('/sys/devices/system/memory/block_size_bytes'), 16)
        count = -(-size // block_size)
        blocks = self._movable_online_blocks(node)
        windows = [blocks[i:i + count] for i in range(len(blocks) - count + 1)
                   if blocks[i + count - 1] - blocks[i] == count - 1]
        if not windows:
            raise oserror(errno.ENOMEM, 'no %d contiguous online Movable blocks on node %d' % (count, node))
        failures = []
        for window in windows:
            done = []
            for block in window:
                try:
                    self._offline_block(block)
                except OSError as exc:
                    failures.append('memory%d: %s' % (block, exc))
                    for back in done:
                        self.write('/sys/devices/system/memory/memory%d/state' % back, 'online_movable')
                    break
                done.append(block)
            else:
                base = window[0] * block_size
                self.taken[base] = window
                return base
        # Like cma_alloc() on pinned pages: the caller may free caches, compact and retry (section 2.8).
        raise oserror(errno.ENOMEM, 'node %d: %s' % (node, '; '.join(failures)))

    def _offline_block(self, block):
        """Offline one block, giving up after offline_timeout seconds.

        offline_pages() retries migration until a signal arrives. A page it cannot move
        (for example the writer's buffer, pinned by FUSE for the write that asked for this
        memory) would hang the write forever, so the write runs in a child that is killed
        on timeout: the kernel then puts the block back online.
        """
        path = self.path('/sys/devices/system/memory/memory%d/state' % block)
        try:
            proc = subprocess.run(['tee', path], input=b'offline', stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=self.offline_timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise oserror(errno.EBUSY, 'offline did not finish within %ss' % self.offline_timeout) from exc
        if proc.returncode != 0:
            raise oserror(errno.EBUSY, proc.stderr.decode(errors='replace').strip() or 'offline failed')

    def mem_release(self, base, size):
        for block in self.taken.pop(base, []):
            state = '/sys/devices/system/memory/memory%d/state' % block
            if self.read(state) == 'offline':   # one the host onlined behind Parker's back stays as it is
                self.write(state, 'online_movable')

    def pci_exists(self, bdf):
        return os.path.isdir(self.path('/sys/bus/pci/devices/' + bdf))

    def virtio_children(self, bdf):
        return virtio_children(self.root, bdf)

    def _names(self, bdf, child, kind):
        path = self.path('/sys/bus/pci/devices/%s/%s/%s' % (bdf, child, kind))
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def pci_enabled(self, bdf):
        return os.path.lexists(self.path('/sys/bus/pci/devices/%s/driver' % bdf)) and bdf not in self.detached

    def pci_detach(self, bdf):
        children = self.virtio_children(bdf)
        if not children:  # not virtio: a stock kernel can only unbind the PCI driver itself
            link = self.path('/sys/bus/pci/devices/%s/driver' % bdf)
            self.remembered[bdf] = os.path.basename(os.readlink(link))
            self.write('/sys/bus/pci/devices/%s/driver/unbind' % bdf, bdf)
            return
        info = {'children': [], 'net': [], 'block': [], 'holders': []}
        for child in children:
            link = self.path('/sys/bus/virtio/devices/%s/driver' % child)
            if not os.path.lexists(link):
                continue
            driver = os.path.basename(os.readlink(link))
            info['net'] += self._names(bdf, child, 'net')
            disks = self._names(bdf, child, 'block')
            info['block'] += disks
            for disk in disks:
                pid = self.hold_disk(disk)
                if pid:
                    info['holders'].append(pid)
            self.write('/sys/bus/virtio/drivers/%s/unbind' % driver, child)
            info['children'].append([child, driver])
        self.detached[bdf] = info

    def hold_disk(self, disk):
        """Keep /dev/<disk> open in a process of its own, so its gendisk (and vdX index) is not freed."""
        try:
            with open(self.path('/dev/' + disk), 'rb') as handle:
                proc = subprocess.Popen(['sleep', 'infinity'], stdin=handle, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                        stderr=subprocess.DEVNULL, start_new_session=True)
            return proc.pid
        except OSError:
            return None

    @staticmethod
    def release_holder(pid):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                if not handle.read().startswith(b'sleep'):
                    return
            os.kill(pid, 15)
        except (OSError, ValueError):
            pass

    def pci_reprobe(self, bdf):
        info = self.detached.pop(bdf, None)
        if info is None:
            self._pci_reprobe(bdf)
            return
        placeholders = []
        for name in info['net']:
            if re.fullmatch(r'eth[0-9]+', name) and not os.path.lexists(self.path('/sys/class/net/' + name)):
                try:
                    self.run(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap'])
                    placeholders.append(name)
                except (OSError, subprocess.SubprocessError):
                    pass
        try:
            for child, driver in info['children']:
                if os.path.lexists(self.path('/sys/bus/virtio/devices/%s/driver' % child)):
                    continue
                try:
                    self.write('/sys/bus/virtio/drivers_probe', child)
                except OSError:
                    self.write('/sys/bus/virtio/drivers/%s/bind' % driver, child)
        finally:
            for name in placeholders:
                try:
                    self.run(['ip', 'tuntap', 'del', 'dev', name, 'mode', 'tap'])
                except (OSError, subprocess.SubprocessError):
                    pass
            for pid in info['holders']:
                self.release_holder(pid)

    def _pci_reprobe(self, bdf):
        try:
            self.write('/sys/bus/pci/drivers_probe', bdf)
        except OSError:
            pass
        driver = self.remembered.pop(bdf, None)
        if driver and not self.pci_enabled(bdf):
            try:
                self.write('/sys/bus/pci/drivers/%s/bind' % driver, bdf)
            except OSError:
                pass

    def kexec_loaded(self):
        try:
            return self.read('/sys/kernel/kexec_loaded') == '1'
        except OSError:
            return False


class Partition:
    def __init__(self, name, ident, control):
        self.name = name
        self.id = ident
        self.control = control
        self.cpus = set()
        self.memory = None  # (base, size)
        self.cma = None  # (nid, first unit) in the node's CMA area
        self.devices = set()
        self.online = False
        self.started = False


class ParkerKernfs:
    """The Parker kernfs tree and its rules. Thread-safe.

    ``on_start(name)`` is called (with parker_mutex held, before blocking) when a
    start succeeds; an instance simulator then calls instance_online(name) from
    another thread. Reads of ``online`` and ``control_structure`` take parker_mutex,
    as on a real Boot Kernel (issue 15 item 5): they block while any start blocks.
    The other reads do not.

    ``cma`` (a CmaAreas) accounts ``memory`` in whole GiB units of the area of the
    first CPU's node (ENOMEM when the node has none or it is full); None keeps the
    old behaviour where only the Backend decides. ``on_change()`` is called after
    every change that a later mount must see again (see state()).
    """

    def __init__(self, backend, on_start=None, online_wait_cap=ONLINE_WAIT_CAP, cma=None):
        self.backend = backend
        self.on_start = on_start
        self.online_wait_cap = online_wait_cap
        self.cma = cma
        self.on_change = None
        self.partitions = {}
        self.wedged = None
        self._mutex = threading.Lock()      # parker_mutex
        self._state = threading.Condition()  # guards the data; "online" waits on it
        self._next_control = CONTROL_PAGE_BASE
        self.simulator = None  # set by parkerfs.make_model

    # -- locking ------------------------------------------------------------
    @contextlib.contextmanager
    def _parker_mutex(self):
        """Hold the emulated parker_mutex for one kernfs operation, as every Parker handler does."""
        self._lock()
        try:
            yield
        finally:
            self._mutex.release()

    def _lock(self):
        if self.wedged:
            raise self._wedged_error()
        if not self._mutex.acquire(timeout=self.online_wait_cap):  # pylint: disable=consider-using-with
            raise oserror(errno.ETIMEDOUT, 'parker_mutex')
        if self.wedged:  # the start we waited behind gave up and left the mutex wedged
            self._mutex.release()
            raise self._wedged_error()

    def _wedged_error(self):
        return oserror(errno.EDEADLK, 'parker_mutex is held by the start of %r that never came online '
                       '(a real kernel blocks here forever)' % self.wedged)

    def _changed(self):
        if self.on_change:
            self.on_change()

    def _get(self, name):
        part = self.partitions.get(name)
        if part is None:
            raise oserror(errno.ENOENT, name)
        return part

    # -- directories ----------------------------------------------------------
    def names(self):
        with self._state:
            return sorted(self.partitions)

    def mkdir(self, name, parent=''):
        if parent:
            raise oserror(errno.EPERM, 'partitions exist only directly under the root')
        if '\n' in name:
            raise oserror(errno.EINVAL, 'partition name contains a newline')
        if '/' in name or name in ('', '.', '..'):
            raise oserror(errno.EINVAL, name)
        if len(name.encode()) > 255:
            raise oserror(errno.ENAMETOOLONG, name)
        with self._parker_mutex():
            with self._state:
                if name in self.partitions:
                    raise oserror(errno.EEXIST, name)
                control = self._next_control
                self._next_control += PAGE_SIZE
                self.partitions[name] = Partition(name, len(self.partitions) + 1, control)
        self._changed()

    def rmdir(self, name):
        with self._parker_mutex():
            with self._state:
                part = self._get(name)
                if part.online:
                    raise oserror(errno.EBUSY, '%s: the application kernel reports itself online' % name)
                del self.partitions[name]
            for cpu in sorted(part.cpus):
                try:
                    self.backend.cpu_online(cpu)
                except OSError:
                    pass  # add_cpu() errors are not checked
            # rmdir has already succeeded: like add_cpu(), cma_release() and the re-probe report nothing back
            # (a block the host onlined behind Parker's back must not fail the rmdir of a stock kernel's emulation).
            if part.memory:
                try:
                    self._release(part)
                except OSError:
                    pass
            for bdf in sorted(part.devices):
                try:
                    self.backend.pci_reprobe(bdf)
                except OSError:
                    pass
            self._changed()

    def _release(self, part):
        """cma_release() of the partition's memory: host blocks back, area units free."""
        self.backend.mem_release(*part.memory)
        if part.cma is not None and self.cma is not None:
            area = self.cma.get(part.cma[0])
            if area is not None:
                area.give_back(part.cma[1], part.memory[1])
                area.release_success += part.memory[1] // PAGE_SIZE
                self.cma.changed(area)
        part.cma = None

    def devices(self, name):
        with self._state:
            return sorted(self._get(name).devices)

    # -- reads ------------------------------------------------------------------
    def read(self, name, leaf):
        if leaf in ('online', 'control_structure'):
            with self._state:
                self._get(name)
            with self._parker_mutex():  # their show() functions take parker_mutex (issue 15 item 5)
                return self._read(name, leaf)
        return self._read(name, leaf)

    def _read(self, name, leaf):
        with self._state:
            part = self._get(name)
            if leaf == 'id':
                return '%u\n' % part.id
            if leaf == 'control_structure':
                return '0x%x\n' % part.control
            if leaf == 'cpus':
                return format_cpulist(part.cpus) + '\n'
            if leaf == 'memory':
                if not part.memory:
                    raise oserror(errno.EINVAL, '%s: no memory allocated' % name)
                return '%d@0x%x\n' % (part.memory[1], part.memory[0])
            if leaf == 'online':
                return '%d\n' % int(part.online)
            if leaf in ('bind', 'unbind'):
                raise oserror(errno.EACCES, '%s is write-only' % leaf)
        raise oserror(errno.ENOENT, leaf)

    # -- writes -----------------------------------------------------------------
    def write(self, name, leaf, data):
        if isinstance(data, bytes):
            data = data.decode('utf-8', 'replace')
        handler = {'cpus': self.write_cpus, 'memory': self.write_memory, 'bind': self.bind,
                   'unbind': self.unbind, 'online': self.start}.get(leaf)
        if handler is None:
            with self._state:
                self._get(name)
            raise oserror(errno.EACCES if leaf in PARTITION_FILES else errno.ENOENT, leaf)
        try:
            return handler(name, data)
        finally:
            self._changed()

    def write_cpus(self, name, data):
        with self._parker_mutex():
            with self._state:
                part = self._get(name)
                try:
                    wanted = parse_cpulist(data, self.backend.nr_cpu_ids())
                except (ValueError, OverflowError) as exc:
                    # Hazard (section 2.8): the mask is cleared before the parse error is
                    # seen. CPUs already offlined stay offline and belong to nobody.
                    part.cpus = set()
                    raise oserror(errno.EINVAL, 'cpus: %s' % exc) from exc
                if len(wanted) > PARKER_MAX_CPUS:
                    raise oserror(errno.EINVAL, 'more than PARKER_MAX_CPUS=%d CPUs' % PARKER_MAX_CPUS)
                for other in self.partitions.values():
                    owned = wanted & other.cpus
                    if owned:
                        raise oserror(errno.EINVAL, 'CPU(s) %s already owned by %s' % (format_cpulist(owned), other.name))
                # A rewrite replaces the set; the old CPUs stay offline (leak, section 5.3).
                part.cpus = wanted
            for cpu in sorted(wanted):
                if self.backend.cpu_is_online(cpu):
                    try:
                        self.backend.cpu_offline(cpu)
                    except OSError:
                        pass  # remove_cpu() errors are ignored: writing "0" succeeded on a real kernel
        return len(data)

    def write_memory(self, name, data):
        with self._parker_mutex():
            with self._state:
                part = self._get(name)
                try:
                    size = memparse(data)
                except ValueError as exc:
                    raise oserror(errno.EINVAL, str(exc)) from exc
                if size == 0:
                    raise oserror(errno.EINVAL, 'memory: size 0')
                if not part.cpus:
                    raise oserror(errno.EINVAL, 'memory: write cpus first (the node comes from the first CPU)')
                node = self.backend.cpu_node(min(part.cpus))
                old = part.memory
            if old:
                try:
                    self._release(part)
                except OSError as exc:
                    raise oserror(errno.EBUSY, 'releasing the old allocation failed') from exc
                with self._state:
                    part.memory = None
                self._changed()
            area, unit = None, None
            if self.cma is not None:
                area = self.cma.get(node)
                if area is None:
                    raise oserror(errno.ENOMEM, 'memory: node %d has no Parker CMA area' % node)
                unit = area.take(size)
                if unit is None:
                    area.alloc_fail += size // PAGE_SIZE
                    self.cma.changed(area)
                    raise oserror(errno.ENOMEM, 'memory: %d bytes: %s has %d of %d GiB units free'
                                  % (size, area.name, area.units.count(False), len(area.units)))
            try:
                base = self.backend.mem_alloc(node, size)
            except OSError as exc:
                if area is not None:
                    area.give_back(unit, size)
                    area.alloc_fail += size // PAGE_SIZE
                    self.cma.changed(area)
                raise oserror(errno.ENOMEM, 'memory: %d bytes on node %d: %s' % (size, node, exc)) from exc
            with self._state:
                part.memory = (base, size)
                if area is not None:
                    part.cma = (node, unit)
                    area.alloc_success += size // PAGE_SIZE
            if area is not None:
                self.cma.changed(area)
            self._changed()
        return len(data)

    def _device_arg(self, data):
        try:
            bdf = parse_bdf(data)
        except ValueError as exc:
            raise oserror(errno.EINVAL, str(exc)) from exc
        if not self.backend.pci_exists(bdf):
            raise oserror(errno.ENODEV, bdf)
        return bdf

    def bind(self, name, data):
        with self._parker_mutex():
            with self._state:
                part = self._get(name)
                bdf = self._device_arg(data)
                claimed = [p.name for p in self.partitions.values() if bdf in p.devices]
                if claimed or not self.backend.pci_enabled(bdf):
                    raise oserror(errno.EBUSY, '%s is not enabled, maybe owned by another kernel' % bdf)
                if len(part.devices) >= PARKER_MAX_PCI_DEVICES:
                    raise oserror(errno.ENOSPC, 'more than PARKER_MAX_PCI_DEVICES=%d' % PARKER_MAX_PCI_DEVICES)
                self.backend.pci_detach(bdf)
                part.devices.add(bdf)
        return len(data)

    def unbind(self, name, data):
        with self._parker_mutex():
            with self._state:
                part = self._get(name)
                bdf = self._device_arg(data)
                if bdf not in part.devices:
                    raise oserror(errno.EINVAL, '%s was not bound to %s' % (bdf, name))
                self.backend.pci_reprobe(bdf)
                part.devices.discard(bdf)
        return len(data)

    def start(self, name, data=''):
        """Write to ``online``: start the partition and block until the instance is online.

        Refusals (emulator choices where the RFC is silent): EBUSY for a second start
        (the partition is single-use, section 2.4), EINVAL with no CPUs (the RFC would
        crash), EIO when the kexec slot is empty. Memory is not checked, as in the RFC.
        After online_wait_cap seconds the writer gets ETIMEDOUT and parker_mutex stays
        taken (every later mutating call gets EDEADLK) until the instance comes online.
        """
        with self._parker_mutex():
            with self._state:
                part = self._get(name)
                if part.started:
                    raise oserror(errno.EBUSY, '%s was already started; rmdir and recreate it' % name)
                if not part.cpus:
                    raise oserror(errno.EINVAL, '%s has no CPUs' % name)
                if not self.backend.kexec_loaded():
                    raise oserror(errno.EIO, 'nothing loaded in the kexec slot: machine_kexec has no image')
                part.started = True
            self._changed()
            if self.on_start:
                self.on_start(name)
            with self._state:
                if not self._state.wait_for(lambda: part.online, timeout=self.online_wait_cap):
                    self.wedged = name
                    raise oserror(errno.ETIMEDOUT, '%s did not come online within %ss' % (name, self.online_wait_cap))
        return len(data)

    # -- hooks for the instance simulator ----------------------------------------------
    def instance_online(self, name):
        """The application kernel sets online=1 at the end of its PCI init."""
        with self._state:
            part = self._get(name)
            if not part.started:
                raise oserror(errno.EINVAL, '%s was never started' % name)
            part.online = True
            if self.wedged == name:
                self.wedged = None
            self._state.notify_all()
        self._changed()

    def instance_shutdown(self, name):
        """The application kernel powers itself off and clears online."""
        with self._state:
            part = self._get(name)
            part.online = False
            self._state.notify_all()
        self._changed()

    # -- what persists across unmount and mount ---------------------------------------
    def state(self):
        """The kernel-side state a later mount reattaches (section 2.3), as JSON-able data."""
        with self._state:
            parts = []
            for part in sorted(self.partitions.values(), key=lambda p: p.id):
                parts.append({'name': part.name, 'id': part.id, 'control': part.control, 'cpus': sorted(part.cpus),
                              'memory': list(part.memory) if part.memory else None,
                              'cma': list(part.cma) if part.cma else None, 'devices': sorted(part.devices),
                              'online': part.online, 'started': part.started})
            return {'partitions': parts, 'next_control': self._next_control,
                    'cma': [a.to_state() for _n, a in sorted(self.cma.areas.items())] if self.cma else None}

    def restore(self, state):
        with self._state:
            self.partitions = {}
            for item in state.get('partitions', []):
                part = Partition(item['name'], item['id'], item['control'])
                part.cpus = set(item['cpus'])
                part.memory = tuple(item['memory']) if item['memory'] else None
                part.cma = tuple(item['cma']) if item.get('cma') else None
                part.devices = set(item['devices'])
                part.online, part.started = item['online'], item['started']
                self.partitions[part.name] = part
            self._next_control = state.get('next_control', CONTROL_PAGE_BASE)
            if state.get('cma') is not None and self.cma is not None:
                self.cma.areas = dict((a['nid'], CmaArea.from_state(a)) for a in state['cma'])

    def info(self, name):
        with self._state:
            part = self._get(name)
            return {'started': part.started, 'online': part.online, 'cpus': sorted(part.cpus),
                    'memory': part.memory, 'devices': sorted(part.devices), 'control': part.control}
