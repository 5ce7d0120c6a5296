"""Build fake sysfs/procfs trees shaped like real hosts.

``FakeHost(tmp_path).build(...)`` lays out the files the collection reads and
writes: CPUs with topology, NUMA nodes, memory blocks, PCI devices with drivers,
net and block class links, /proc files and the kexec attributes. Writes to the
fake ``online``/``state``/``bind`` files are plain file writes; ``KernelSim``
can be used to apply their side effects the way the kernel would.
"""
import os


def lst(first, last):
    return '%d-%d' % (first, last) if last > first else '%d' % first


class FakeHost:
    def __init__(self, root):
        self.root = str(root)

    # -- helpers ----------------------------------------------------------
    def path(self, rel):
        return os.path.join(self.root, rel.lstrip('/'))

    def write(self, rel, text):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(text if text.endswith('\n') or text == '' else text + '\n')

    def read(self, rel):
        with open(self.path(rel)) as handle:
            return handle.read().strip()

    def symlink(self, target_rel, link_rel):
        """Create link_rel -> target_rel as a relative link, like sysfs does."""
        link = self.path(link_rel)
        target = self.path(target_rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.splitext(target)[1]:   # a directory target (device, driver) must exist for realpath
            os.makedirs(target, exist_ok=True)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(target, os.path.dirname(link)), link)

    # -- the host ---------------------------------------------------------
    def build(self, sockets=2, cores=2, threads=2, nodes=2, boot_blocks=8, movable_blocks=4,
              block_size=128 << 20, devices=None, offline_cpus=(), ssh_iface='eth0',
              cmdline='root=/dev/vda ro console=ttyS0 crashkernel=128M', kernel_config=None,
              llc_cores=None, model='Fake CPU @ 2.00GHz'):
        """``llc_cores``: cores per last-level cache domain (cpuN/cache/index3), None for one per
        socket, 0 for no index3 at all (as a VM may show)."""
        ncpu = sockets * cores * threads
        self.ncpu = ncpu
        cpus_per_node = ncpu // nodes
        self.write('/sys/devices/system/cpu/possible', lst(0, ncpu - 1))
        self.write('/sys/devices/system/cpu/present', lst(0, ncpu - 1))
        apic_lines = []
        for cpu in range(ncpu):
            package = cpu // (cores * threads)
            core = (cpu // threads) % cores
            base = '/sys/devices/system/cpu/cpu%d' % cpu
            if cpu != 0:
                self.write(base + '/online', '0' if cpu in offline_cpus else '1')
            else:
                os.makedirs(self.path(base), exist_ok=True)
            first = cpu - cpu % threads
            if cpu not in offline_cpus:
                self.write(base + '/topology/physical_package_id', str(package))
                self.write(base + '/topology/die_id', '0')
                self.write(base + '/topology/core_id', str(core))
                self.write(base + '/topology/thread_siblings_list', lst(first, first + threads - 1))
                self.write(base + '/topology/core_cpus_list', lst(first, first + threads - 1))
                apic_lines.append('processor\t: %d\nmodel name\t: %s\napicid\t\t: %d\n' % (cpu, model, cpu))
                if llc_cores != 0:
                    span = (llc_cores or cores) * threads
                    domain = set(range(cpu - cpu % span, cpu - cpu % span + span)) - set(offline_cpus)
                    from ansible_collections.parker.kernel.plugins.module_utils._cpulist import format_cpulist
                    self.write(base + '/cache/index3/shared_cpu_list', format_cpulist(domain))
        self.write('/proc/cpuinfo', '\n'.join(apic_lines))
        self.sync_cpu_online()

        # NUMA nodes and memory blocks: boot memory first, then hot-plugged movable blocks.
        self.block_size = block_size
        self.write('/sys/devices/system/memory/block_size_bytes', '%x' % block_size)
        self.write('/sys/devices/system/memory/auto_online_blocks', 'online_movable')
        self.write('/sys/devices/system/node/online', lst(0, nodes - 1))
        first_movable = max(32, boot_blocks)  # hot-plugged DIMMs sit above boot memory
        block_ids = list(range(boot_blocks)) + list(range(first_movable, first_movable + movable_blocks))
        for node in range(nodes):
            self.write('/sys/devices/system/node/node%d/cpulist' % node,
                       lst(node * cpus_per_node, (node + 1) * cpus_per_node - 1))
            self.write('/sys/devices/system/node/node%d/distance' % node,
                       ' '.join('10' if n == node else '20' for n in range(nodes)))
            for cpu in range(node * cpus_per_node, (node + 1) * cpus_per_node):
                if os.path.isdir(self.path('/sys/devices/system/cpu/cpu%d' % cpu)):
                    self.symlink('/sys/devices/system/node/node%d' % node, '/sys/devices/system/cpu/cpu%d/node%d' % (cpu, node))
        per_node_boot = max(1, boot_blocks // nodes)
        per_node_movable = max(1, movable_blocks // nodes)
        for index, block in enumerate(block_ids):
            movable = block >= first_movable
            node = min(nodes - 1, ((index - boot_blocks) // per_node_movable) if movable else index // per_node_boot)
            base = '/sys/devices/system/memory/memory%d' % block
            self.write(base + '/state', 'online')
            self.write(base + '/online', '1')
            self.write(base + '/valid_zones', 'Movable' if movable else ('none' if block == 0 else 'DMA32'))
            self.write(base + '/removable', '1')
            self.write(base + '/phys_index', '%08x' % block)
            self.symlink(base, '/sys/devices/system/node/node%d/memory%d' % (node, block))
        self.sync_meminfo()
        self.write('/proc/iomem', '\n'.join([
            '00000000-00000fff : Reserved',
            '00001000-0009fbff : System RAM',
            '00100000-3fffffff : System RAM',
            '  01000000-01ffffff : Kernel code',
            '  02000000-0247ffff : Kernel data',
            '  37000000-3effffff : Crash kernel',
            '100000000-11fffffff : System RAM',
        ]))

        # PCI devices: (bdf, vendor, device, class, driver, net/block name)
        if devices is None:
            devices = [
                ('0000:00:00.0', '8086', '1237', '0x060000', None, None),
                ('0000:00:02.0', '1af4', '1001', '0x010000', 'virtio-pci', 'block:vda'),
                ('0000:00:03.0', '1af4', '1001', '0x010000', 'virtio-pci', 'block:vdb'),
                ('0000:00:04.0', '1af4', '1005', '0x00ff00', 'virtio-pci', None),
                ('0000:00:05.0', '1af4', '1000', '0x020000', 'virtio-pci', 'net:eth0'),
                ('0000:00:06.0', '1af4', '1000', '0x020000', 'virtio-pci', 'net:eth1'),
            ]
        self.add_pci_devices(devices)
        self.write('/sys/bus/pci/drivers_probe', '')
        self.write('/proc/net/route', '\n'.join([
            'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT',
            '%s\t00000000\t0202000A\t0003\t0\t0\t1024\t00000000\t0\t0\t0' % ssh_iface,
            '%s\t0002000A\t00000000\t0001\t0\t0\t1024\t00FFFFFF\t0\t0\t0' % ssh_iface,
        ]))
        self.write('/proc/self/mountinfo', '22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n')
        self.symlink('/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1', '/sys/dev/block/254:1')
        self.write('/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1/partition', '1')

        # kexec and kernel
        self.write('/sys/kernel/kexec_loaded', '0')
        self.write('/sys/kernel/kexec_crash_loaded', '0')
        self.write('/sys/kernel/kexec_crash_size', str(128 << 20))
        self.write('/proc/sys/kernel/kexec_load_disabled', '0')
        self.write('/sys/kernel/security/lockdown', '[none] integrity confidentiality')
        self.write('/proc/sys/kernel/osrelease', '6.1.0-fake-amd64')
        self.write('/proc/sys/kernel/version', '#1 SMP PREEMPT_DYNAMIC Debian 6.1.0')
        self.write('/proc/cmdline', cmdline)
        config = kernel_config or {'HOTPLUG_CPU': 'y', 'MEMORY_HOTPLUG': 'y', 'MEMORY_HOTREMOVE': 'y',
                                   'KEXEC': 'y', 'KEXEC_FILE': 'y', 'CMA': 'y'}
        self.write('/boot/config-6.1.0-fake-amd64', '\n'.join('CONFIG_%s=%s' % kv for kv in sorted(config.items())))
        self.write('/boot/vmlinuz-6.1.0-fake-amd64', 'MZ fake kernel')
        self.write('/boot/initrd.img-6.1.0-fake-amd64', 'fake initrd')
        self.write('/boot/grub/grub.cfg', '# fake\n')
        self.write('/proc/mounts', 'sysfs /sys sysfs rw 0 0\n')
        self.write('/proc/sys/vm/drop_caches', '0')
        self.write('/proc/sys/vm/compact_memory', '0')
        return self

    # -- Parker ------------------------------------------------------------
    def parker_kernel(self, root='/sys/fs/parker', mounted=True):
        """A Parker Boot Kernel: the filesystem type registered, the root directory, mounted or not."""
        os.makedirs(self.path(root), exist_ok=True)
        self.write('/proc/filesystems', 'nodev\tsysfs\nnodev\tproc\nnodev\tparker\n')
        if mounted:
            self.mount_parker(root)
        return self

    def mount_parker(self, root='/sys/fs/parker'):
        """What `mount -t parker none ROOT` leaves in /proc/mounts."""
        with open(self.path('/proc/mounts'), 'a') as handle:
            handle.write('none %s parker rw,relatime 0 0\n' % root)

    def kmsg(self, *lines):
        """/dev/kmsg records (prio,seq,usec,flags;message), as the kernel log shows them."""
        self.write('/dev/kmsg', ''.join('6,%d,%d,-;%s\n' % (seq, seq * 1000, line) for seq, line in enumerate(lines)))

    def cma_sysfs(self, node, total_pages=None, used_pages=0):
        """/sys/kernel/mm/cma/parker<node>/: the counters, and total/available pages as on 6.14+."""
        base = '/sys/kernel/mm/cma/parker%d' % node
        self.write(base + '/alloc_pages_success', str(used_pages))
        self.write(base + '/alloc_pages_fail', '0')
        self.write(base + '/release_pages_success', '0')
        if total_pages is not None:
            self.write(base + '/total_pages', str(total_pages))
            self.write(base + '/available_pages', str(total_pages - used_pages))

    def cma_debugfs(self, node, base_pfn, count, used=0):
        base = '/sys/kernel/debug/cma/parker%d' % node
        for name, value in (('base_pfn', base_pfn), ('count', count), ('used', used), ('order_per_bit', 18)):
            self.write(base + '/' + name, str(value))

    def build_large(self):
        """A large partitioning server: 1024 CPUs, 8 nodes, 4096 memory blocks, 512 devices."""
        devices = [('0000:00:00.0', '8086', '1237', '0x060000', None, None),
                   ('0000:00:02.0', '1af4', '1001', '0x010000', 'virtio-pci', 'block:vda'),
                   ('0000:00:05.0', '1af4', '1000', '0x020000', 'virtio-pci', 'net:eth0')]
        for index in range(512 - len(devices)):
            bus, slot = 1 + index // 32, index % 32
            kind = index % 3
            devices.append(('0000:%02x:%02x.0' % (bus, slot), '1af4', ('1000', '1001', '1005')[kind],
                            ('0x020000', '0x010000', '0x00ff00')[kind], 'virtio-pci',
                            ('net:eth%d' % (index + 1), 'block:vd%d' % index, None)[kind]))
        return self.build(sockets=8, cores=64, threads=2, nodes=8, boot_blocks=2048, movable_blocks=2048,
                          devices=devices)

    def add_pci_devices(self, devices):
        for index, (bdf, vendor, device, klass, driver, child) in enumerate(devices):
            real = '/sys/devices/pci0000:00/%s' % bdf
            self.write(real + '/vendor', '0x' + vendor)
            self.write(real + '/device', '0x' + device)
            self.write(real + '/class', klass)
            self.write(real + '/numa_node', '-1')
            self.write(real + '/driver_override', '(null)')
            self.symlink('/sys/kernel/iommu_groups/%d' % index, real + '/iommu_group')
            self.symlink(real, '/sys/bus/pci/devices/%s' % bdf)
            if driver:
                self.write('/sys/bus/pci/drivers/%s/bind' % driver, '')
                self.write('/sys/bus/pci/drivers/%s/unbind' % driver, '')
                self.symlink('/sys/bus/pci/drivers/' + driver, real + '/driver')
            if child:
                kind, name = child.split(':')
                node = '%s/virtio%d/%s/%s' % (real, index, 'net' if kind == 'net' else 'block', name)
                os.makedirs(self.path(node), exist_ok=True)
                self.symlink(node, '/sys/class/net/%s' % name if kind == 'net' else '/sys/block/%s' % name)
                if kind == 'net':
                    self.write(node + '/ifindex', str(index + 2))
                    self.write(node + '/flags', '0x1003')
                else:
                    self.symlink(node, '/sys/class/block/%s' % name)
                    self.write(node + '/dev', '254:%d' % (16 * index))

    # -- what holds a device --------------------------------------------------
    def partition(self, disk, number):
        """Add partition <disk><number> under a disk made by add_pci_devices; returns its name."""
        disk_node = os.path.realpath(self.path('/sys/block/' + disk))
        name = '%s%d' % (disk, number)
        node = os.path.join(disk_node, name)
        rel = node[len(os.path.realpath(self.root)):]
        self.write(rel + '/partition', str(number))
        major, minor = self.read(rel[:-len(name)] + 'dev').split(':')
        self.write(rel + '/dev', '%s:%d' % (major, int(minor) + number))
        self.symlink(rel, '/sys/class/block/' + name)
        return name

    def holder(self, below, name, dm_name=None, dm_uuid=None, md_level=None, md_state='clean'):
        """A virtual block device ``name`` (dm-N or mdN) stacked on block device ``below``."""
        rel = '/sys/devices/virtual/block/' + name
        self.write(rel + '/dev', '253:%d' % len(os.listdir(self.path('/sys/class/block'))))
        if dm_name:
            self.write(rel + '/dm/name', dm_name)
            self.write(rel + '/dm/uuid', dm_uuid or '')
        if md_level:
            self.write(rel + '/md/level', md_level)
            self.write(rel + '/md/array_state', md_state)
        self.symlink(rel, '/sys/class/block/' + name)
        below_rel = os.path.realpath(self.path('/sys/class/block/' + below))[len(os.path.realpath(self.root)):]
        self.symlink(rel, below_rel + '/holders/' + name)
        self.symlink(below_rel, rel + '/slaves/' + below)

    def mount(self, device, point, fstype='ext4'):
        majmin = self.read('/sys/class/block/%s/dev' % device)
        with open(self.path('/proc/self/mountinfo'), 'a') as handle:
            handle.write('40 22 %s / %s rw,relatime - %s /dev/%s rw\n' % (majmin, point, fstype, device))

    def swap(self, device):
        self.write('/proc/swaps', 'Filename\tType\tSize\tUsed\tPriority\n/dev/%s\tpartition\t1048572\t0\t-2\n'
                   % device)

    def open_by(self, pid, comm, device):
        self.write('/proc/%d/comm' % pid, comm)
        os.makedirs(self.path('/proc/%d/fd' % pid), exist_ok=True)
        os.symlink('/dev/' + device, self.path('/proc/%d/fd/3' % pid))

    def address(self, iface, address, prefix, scope=0):
        import json
        path = self.path('/.fake/addresses.json')
        entries = json.load(open(path)) if os.path.exists(path) else []
        entries.append({'index': int(self.read('/sys/class/net/%s/ifindex' % iface)), 'address': address,
                        'prefix': prefix, 'scope': scope})
        self.write('/.fake/addresses.json', json.dumps(entries))

    def sync_cpu_online(self):
        online = [0] + [c for c in range(1, self.ncpu)
                        if self.read('/sys/devices/system/cpu/cpu%d/online' % c) == '1']
        from ansible_collections.parker.kernel.plugins.module_utils._cpulist import format_cpulist
        self.write('/sys/devices/system/cpu/online', format_cpulist(online))
        self.write('/sys/devices/system/cpu/offline', format_cpulist(set(range(self.ncpu)) - set(online)))

    def sync_meminfo(self):
        root = self.path('/sys/devices/system/memory')
        online = sum(1 for name in os.listdir(root) if name.startswith('memory')
                     and self.read('/sys/devices/system/memory/%s/state' % name) == 'online')
        total_kb = online * self.block_size // 1024
        self.write('/proc/meminfo', 'MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\n'
                   'CmaTotal:              0 kB\nCmaFree:               0 kB\n' % (total_kb, total_kb // 2, total_kb // 2))


class KernelSim:
    """Give fake sysfs writes the side effects the kernel would have.

    Installed over Transaction._write_now, so the collection's own verify step
    reads back what a real kernel would show.
    """

    def __init__(self, host):
        self.host = host

    def install(self, monkeypatch):
        from ansible_collections.parker.kernel.plugins.module_utils import _hostio
        real_write = _hostio.Transaction._write_now
        sim = self

        def write(txn, rel, value):
            real_write(txn, rel, value)
            sim.after_write(rel, str(value).strip())
        monkeypatch.setattr(_hostio.Transaction, '_write_now', write)
        return self

    def after_write(self, rel, value):
        host = self.host
        if rel.startswith('/sys/devices/system/cpu/cpu'):
            host.sync_cpu_online()
        elif rel.startswith('/sys/devices/system/memory/'):
            if value.startswith('online'):
                host.write(rel, 'online')
            host.sync_meminfo()
        elif rel.endswith('/driver/unbind') or ('/drivers/' in rel and rel.endswith('/unbind')):
            link = host.path('/sys/bus/pci/devices/%s/driver' % value)
            if os.path.lexists(link):
                os.remove(link)
        elif rel.endswith('/bind') and '/drivers/' in rel:
            driver = rel.split('/')[-2]
            host.symlink('/sys/bus/pci/drivers/' + driver, '/sys/bus/pci/devices/%s/driver' % value)
        elif rel.endswith('/driver_override'):
            host.write(rel, value or '(null)')
        elif rel == '/sys/bus/pci/drivers_probe':
            override = host.read('/sys/bus/pci/devices/%s/driver_override' % value)
            if override not in ('(null)', 'none'):
                host.write('/sys/bus/pci/drivers/%s/bind' % override, '')
                host.symlink('/sys/bus/pci/drivers/' + override, '/sys/bus/pci/devices/%s/driver' % value)
