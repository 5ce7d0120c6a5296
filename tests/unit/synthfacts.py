"""Synthetic partition_facts for planner tests and benchmarks (no sysfs tree: the facts dict itself).

``synth(...)`` returns ``ansible_facts.parker_kernel`` as partition_facts would report it for a host
of the given shape: CPUs with package, die, core, SMT siblings, node and LLC domain; NUMA nodes with
memory and distances; memory blocks; PCI devices with class, driver, node, IOMMU group, names and the
Boot Kernel's lock-out flags; an empty Parker kernfs. Shapes used by the tests:

- ``intel_2s()``: 2 sockets, one node each, SMT siblings numbered n and n+N, one LLC per socket;
- ``amd_nps4()``: 2 sockets x 4 nodes, 8-core LLC domains (one per CCX), siblings n and n+N;
- ``memoryless=(2,)``: a node with CPUs and no memory; ``threads=1``: no SMT;
- devices on chosen nodes, a partial IOMMU group (``shared_group`` in a device spec).
"""

from __future__ import absolute_import, division, print_function

GIB = 1 << 30


def cpulist(cpus):
    cpus = sorted(cpus)
    parts, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else '%d-%d' % (cpus[i], cpus[j]))
        i = j + 1
    return ','.join(parts)


NIC = {'class': '0x020000', 'vendor': '8086', 'device': '1592', 'driver': 'ice', 'kind': 'net'}
NVME = {'class': '0x010802', 'vendor': '144d', 'device': 'a824', 'driver': 'nvme', 'kind': 'block'}
GPU = {'class': '0x030200', 'vendor': '10de', 'device': '2330', 'driver': 'nvidia', 'kind': None}


def synth(sockets=2, nodes_per_socket=1, cores_per_node=8, threads=2, llc_cores=None, dies_per_node=1,
          numbering='split', node_gib=64, memoryless=(), block_size=2 * GIB, free_fraction=0.9,
          devices=None, model='Intel(R) Xeon(R) Gold 6438N', bus_offset=0, ssh=True, root_disk=True,
          offline=(), no_topology=(), parker_partitions=None, cma=None):
    """Facts of one host. ``numbering``: 'split' (siblings n and n+N, Intel and AMD on Linux), 'adjacent'
    (2n and 2n+1) or 'interleaved' (cores alternate between sockets, siblings n and n+N).

    ``devices``: list of dicts {type: NIC/NVME/GPU-like dict, node, count, functions (per slot, default 1,
    each slot's functions share one IOMMU group), names}; ``bus_offset`` moves every bus number so that
    two hosts of one model show different PCI addresses.
    """
    nodes = sockets * nodes_per_socket
    total_cores = nodes * cores_per_node
    llc_cores = llc_cores or cores_per_node
    # Global core g: node g // cores_per_node, socket node // nodes_per_socket.
    core_ids = list(range(total_cores))
    if numbering == 'interleaved':
        # Firmware numbers cores round-robin over sockets: logical core k is on socket k % sockets.
        per_socket = total_cores // sockets
        logical_of = {}
        for socket in range(sockets):
            for i in range(per_socket):
                logical_of[socket * per_socket + i] = i * sockets + socket
    else:
        logical_of = dict((g, g) for g in core_ids)
    cpus = []
    node_cpus = dict((n, []) for n in range(nodes))
    for g in core_ids:
        node = g // cores_per_node
        socket = node // nodes_per_socket
        local = g % cores_per_node
        die = local * dies_per_node // cores_per_node
        logical = logical_of[g]
        if numbering == 'adjacent':
            thread_cpus = [logical * threads + t for t in range(threads)]
        else:
            thread_cpus = [logical + t * total_cores for t in range(threads)]
        llc_first = g - g % llc_cores
        llc_members = []
        for h in range(llc_first, min(llc_first + llc_cores, (node + 1) * cores_per_node)):
            lh = logical_of[h]
            llc_members.extend([lh * threads + t for t in range(threads)] if numbering == 'adjacent'
                               else [lh + t * total_cores for t in range(threads)])
        for cpu in thread_cpus:
            node_cpus[node].append(cpu)
            topo = cpu not in no_topology
            cpus.append({
                'id': cpu, 'online': cpu not in offline, 'hotpluggable': cpu != 0, 'node': node,
                'apic_id': (socket << 8) + (local << 1) + thread_cpus.index(cpu) if topo else None,
                'package': socket if topo else None, 'die': die if topo else None,
                'core': local if topo else None,
                'thread_siblings': cpulist(thread_cpus) if topo else None,
                'core_cpus': cpulist(thread_cpus) if topo else None,
                'topology_source': 'sysfs' if topo else None,
                'llc': cpulist(set(llc_members) - set(offline)) if topo and cpu not in offline else None,
            })
    cpus.sort(key=lambda c: c['id'])
    ncpu = len(cpus)
    numa_nodes, blocks = [], []
    block_id = 0
    for node in range(nodes):
        gib = 0 if node in memoryless else (node_gib[node] if isinstance(node_gib, (list, tuple)) else node_gib)
        total = gib * GIB
        count = total // block_size
        for _block in range(count):
            blocks.append({'id': block_id, 'node': node, 'state': 'online', 'start': block_id * block_size,
                           'end': (block_id + 1) * block_size - 1, 'valid_zones': ['Normal'], 'removable': 1})
            block_id += 1
        socket = node // nodes_per_socket
        numa_nodes.append({
            'id': node, 'cpus': cpulist(node_cpus[node]),
            'mem_total': total - (256 << 20 if total else 0),
            'mem_free': int(total * free_fraction) if total else 0,
            'distances': [10 if n == node else (12 if n // nodes_per_socket == socket else 32) for n in range(nodes)],
        })
    pci = _devices(devices if devices is not None else default_devices(nodes), bus_offset, ssh, root_disk)
    online = [c['id'] for c in cpus if c['online']]
    return {
        'cpus': {
            'possible': cpulist(range(ncpu)), 'present': cpulist(range(ncpu)), 'online': cpulist(online),
            'offline': cpulist(set(range(ncpu)) - set(online)), 'boot_cpus': '0', 'smt_control': 'on',
            'isolated': '', 'nohz_full': '(null)', 'model': model, 'list': cpus,
        },
        'numa': {'nodes': numa_nodes, 'online': cpulist(range(nodes))},
        'memory': {'block_size': block_size, 'auto_online_blocks': 'offline', 'blocks': blocks},
        'pci': {'devices': pci, 'ssh_interface': 'ens1f0' if ssh else None, 'ssh_address_source': 'SSH_CONNECTION',
                'default_route_interfaces': ['ens1f0'] if ssh else []},
        'parker': {'root': '/sys/fs/parker', 'present': True, 'mounted': True, 'fs_type': 'parker',
                   'filesystem_available': True, 'filesystem_source': '/proc/filesystems',
                   'partitions': parker_partitions or [], 'blocked_starts': [], 'cma': cma},
    }


def default_devices(nodes):
    """Two NIC ports (one slot, one IOMMU group each) and one NVMe drive per node."""
    specs = []
    for node in range(nodes):
        specs.append({'type': NIC, 'node': node, 'count': 2})
        specs.append({'type': NVME, 'node': node, 'count': 1})
    return specs


def _devices(specs, bus_offset, ssh, root_disk):
    devices, group = [], 10
    slot_of_node = {}
    nic_index, disk_index = {}, 0
    first_nic, first_disk = [ssh], [root_disk]
    devices.append({'address': '0000:00:00.0', 'vendor': '8086', 'device': '09a2', 'class': '0x060000',
                    'driver': None, 'driver_override': None, 'numa_node': 0, 'iommu_group': '0', 'net': [],
                    'block': [], 'default_route': False, 'ssh': False, 'root_fs': False, 'in_use': [],
                    'claimed_by': None})
    for spec in specs:
        kind = spec['type']
        node = spec['node']
        functions = spec.get('functions', 1)
        for _slot in range(spec.get('count', 1)):
            slot = slot_of_node.get(node, 0)
            slot_of_node[node] = slot + 1
            bus = (0x17 + 0x20 * node + bus_offset) % 0x100
            group += 1
            for function in range(functions):
                address = '0000:%02x:%02x.%d' % (bus, slot, function)
                entry = {'address': address, 'vendor': kind['vendor'], 'device': kind['device'],
                         'class': kind['class'], 'driver': spec.get('driver', kind['driver']), 'driver_override': None,
                         'numa_node': spec.get('numa_node', node), 'iommu_group': str(group), 'net': [], 'block': [],
                         'default_route': False, 'ssh': False, 'root_fs': False, 'in_use': [], 'claimed_by': None}
                if kind['kind'] == 'net':
                    number = nic_index.setdefault(node, 0)
                    nic_index[node] = number + 1
                    entry['net'] = ['ens%df%d' % (node + 1, number)]
                    if first_nic[0]:
                        first_nic[0] = False
                        entry.update(ssh=True, default_route=True,
                                     in_use=['ens%df%d is up with address 10.0.0.5/24' % (node + 1, number)])
                elif kind['kind'] == 'block':
                    entry['block'] = ['nvme%dn1' % disk_index]
                    disk_index += 1
                    if first_disk[0]:
                        first_disk[0] = False
                        entry.update(root_fs=True, in_use=['/dev/nvme0n1p2 is mounted at /'])
                if spec.get('in_use'):
                    entry['in_use'] = list(spec['in_use'])
                devices.append(entry)
    devices.sort(key=lambda d: d['address'])
    return devices


def intel_2s(**options):
    """2 sockets x 1 node, 16 cores per node, SMT siblings n and n+32: 64 CPUs."""
    base = dict(sockets=2, nodes_per_socket=1, cores_per_node=16, threads=2, node_gib=128)
    base.update(options)
    return synth(**base)


def amd_nps4(**options):
    """2 sockets x 4 nodes (NPS4), 16 cores per node in two 8-core LLC domains (CCX), siblings n and n+128."""
    base = dict(sockets=2, nodes_per_socket=4, cores_per_node=16, threads=2, llc_cores=8, node_gib=96,
                model='AMD EPYC 9554 64-Core Processor')
    base.update(options)
    return synth(**base)
