"""The planner on synthetic topologies: every plan is checked against the same invariants."""
import copy
import json

import pytest
import yaml

from ansible_collections.parker.kernel.tests.unit.synthfacts import synth, intel_2s, amd_nps4, NIC, NVME, GPU
from ansible_collections.parker.kernel.plugins.module_utils import _planner, _fingerprint
from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpulist
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse
from ansible_collections.parker.kernel.plugins.module_utils._intent import IntentError


@pytest.fixture(autouse=True)
def fresh_caches():
    _planner.clear_caches()
    yield
    _planner.clear_caches()


def check(plan, facts, intent=None):
    """The invariants every plan keeps; returns {name: set of CPUs}."""
    if plan['refused']:
        assert plan['partitions'] == [] and plan['reasons']
        return {}
    cpus = dict((c['id'], c) for c in facts['cpus']['list'])
    devices = dict((d['address'], d) for d in facts['pci']['devices'])
    owners, given_devices = {}, {}
    hk = parse_cpulist(plan['housekeeping']['cpus'])
    placement = dict((p['name'], p) for p in plan['placement'])
    core0 = parse_cpulist(cpus[0]['core_cpus'])
    assert core0 <= hk, 'CPU 0\'s core stays with the Boot Kernel'
    result = {}
    for part in plan['partitions']:
        mine = parse_cpulist(part['cpus'])
        assert mine, part
        result[part['name']] = mine
        assert not mine & hk, 'housekeeping CPUs are never given away'
        for cpu in mine:
            assert cpu not in owners, 'CPU %d given twice' % cpu
            owners[cpu] = part['name']
        smt = placement[part['name']]['smt']
        for cpu in mine:
            siblings = parse_cpulist(cpus[cpu]['core_cpus'])
            if smt == 'whole':
                assert siblings <= mine, 'whole cores: %s has %d but not all of %s' % (part['name'], cpu, siblings)
            else:
                assert len(siblings & mine) == 1
        # Memory is node-local: from the node of the first CPU, and a whole number of units.
        first_node = cpus[min(mine)]['node']
        assert placement[part['name']]['memory_node'] == first_node
        unit = memparse(plan['memory_unit'])
        assert memparse(part['memory']) % unit == 0 and memparse(part['memory']) > 0
        for address in part['devices']:
            assert address not in given_devices, 'device %s given twice' % address
            given_devices[address] = part['name']
            dev = devices[address]
            assert not (dev['ssh'] or dev['default_route'] or dev['root_fs'] or dev['in_use'])
            assert dev['claimed_by'] in (None, part['name'])
            assert dev['driver']
    # Whole IOMMU groups: every member of a given device's group goes to the same partition.
    for address, name in given_devices.items():
        group = devices[address]['iommu_group']
        for other in devices.values():
            if other['iommu_group'] == group:
                assert given_devices.get(other['address']) == name, 'partial IOMMU group %s' % group
    # SMT siblings of a single-thread partition go to nobody else.
    for name, mine in result.items():
        if placement[name]['smt'] == 'single':
            for cpu in mine:
                for sibling in parse_cpulist(cpus[cpu]['core_cpus']) - {cpu}:
                    assert sibling not in owners
    return result


def dumps(plan):
    return json.dumps(plan, sort_keys=True), yaml.safe_dump(plan, sort_keys=True, default_flow_style=False)


INTENT = {
    'housekeeping': {'cores_per_node': 1},
    'address_pools': {'fabric': {'network': '10.77.0.0/16', 'gateway': '10.77.0.1', 'first': 16, 'stride': 4}},
    'partitions': [
        {'name': 'web', 'cpus': 8, 'node': 1, 'memory': '16G', 'devices': [{'class': 'net'}],
         'network': {'pool': 'fabric', 'slot': 0, 'hostname': '{short}-{partition}'}, 'console': 'ttyS1,115200'},
        {'name': 'db', 'cpus': '25%', 'memory': '25%', 'devices': [{'class': 'nvme'}]},
        {'name': 'batch', 'cpus': 'rest', 'node': 0, 'memory': '8G', 'start': False},
        {'name': 'wide', 'cpus': 2, 'placement': 'spread', 'memory': '2G', 'smt': 'single'},
    ],
}


def test_intel_two_sockets_siblings_n_and_n_plus_32():
    facts = intel_2s()
    plan = _planner.plan_host(facts, INTENT, {'name': 'node17.example.com', 'index': 17})
    got = check(plan, facts)
    assert not plan['refused'], plan['reasons']
    web = plan['partitions'][0]
    assert web == {'name': 'web', 'cpus': '17-24,49-56', 'memory': '16G', 'devices': ['0000:37:00.0'],
                   'network': {'address': '10.77.0.84/16', 'gateway': '10.77.0.1', 'hostname': 'node17-web'},
                   'console': 'ttyS1,115200'}
    assert plan['housekeeping'] == {'cpus': '0,16,32,48', 'cores': 2}
    # db: 25% of the 30 partitionable cores = 7, on node 1: node 0's NVMe holds the root filesystem.
    assert len(got['db']) == 14 and plan['placement'][1]['nodes'] == [1]
    assert plan['partitions'][1]['devices'] == ['0000:37:02.0'] and plan['partitions'][1]['memory'] == '28G'
    assert plan['partitions'][2]['start'] is False
    assert plan['memory_by_node'] == {'0': '10G', '1': '44G'}
    assert plan['partitions'][3]['cpus'] == '1-2'   # spread, single threads: node 1 is full by then


def test_amd_nps4_partitions_stay_inside_one_ccx():
    facts = amd_nps4()
    intent = {'partitions': [
        {'name': 'a', 'cpus': 8, 'node': 2, 'memory': '8G'},     # node 2: CCX 0 has 7 free (housekeeping), CCX 1 8
        {'name': 'b', 'cpus': 6, 'node': 2, 'memory': '8G'},     # then only CCX 0 fits 6
        {'name': 'c', 'cpus': 5, 'memory': '8G'},
        {'name': 'd', 'cpus': 12, 'memory': '8G'},               # more than a CCX: two domains, not three
    ]}
    plan = _planner.plan_host(facts, intent, 'amd1')
    check(plan, facts)
    placement = dict((p['name'], p) for p in plan['placement'])
    assert [placement[n]['llc_domains'] for n in 'abcd'] == [1, 1, 1, 2]
    cpus = dict((c['id'], c) for c in facts['cpus']['list'])
    a = parse_cpulist(plan['partitions'][0]['cpus'])
    assert len(set(cpus[c]['llc'] for c in a)) == 1 and len(a) == 16
    assert plan['warnings'] == []


def test_llc_is_ignored_on_request_and_warned_when_unavoidable():
    facts = amd_nps4()
    intent = {'partitions': [
        {'name': 'x', 'cpus': 5, 'node': 0, 'memory': '1G'},   # best fit: CCX 0 (7 free after housekeeping)
        {'name': 'y', 'cpus': 5, 'node': 0, 'memory': '1G'},   # CCX 1 (8 free)
        {'name': 'z', 'cpus': 5, 'node': 0, 'memory': '1G'},   # 2 + 3 left: it must straddle
    ]}
    plan = _planner.plan_host(facts, intent, 'amd1')
    check(plan, facts)
    assert [p['llc_domains'] for p in plan['placement']] == [1, 1, 2]
    assert plan['partitions'][2]['cpus'] == '6-7,13-15,134-135,141-143'
    assert plan['warnings'] == ['z spans 2 last-level cache domains on node 0: no single one there had 5 free '
                                'whole cores']
    ignore = copy.deepcopy(intent)
    for part in ignore['partitions']:
        part['cache'] = 'ignore'
    plan = _planner.plan_host(facts, ignore, 'amd1')
    check(plan, facts)
    assert plan['partitions'][0]['cpus'] == '1-5,129-133' and plan['warnings'] == []


def test_memoryless_node_refused_by_name_and_avoided_when_free_to_choose():
    facts = synth(sockets=1, nodes_per_socket=3, cores_per_node=4, memoryless=(2,), node_gib=16)
    pinned = {'partitions': [{'name': 'p', 'cpus': 2, 'node': 2, 'memory': '2G'}]}
    plan = _planner.plan_host(facts, pinned, 'h')
    assert plan['refused'] and 'node 2 has no memory (a memoryless node)' in plan['reasons'][0]
    free = {'partitions': [{'name': 'p', 'cpus': 3, 'memory': '2G'}, {'name': 'q', 'cpus': 3, 'memory': '2G'}]}
    plan = _planner.plan_host(facts, free, 'h')
    check(plan, facts)
    # Node 2 has the most free cores (4, no housekeeping core taken by CPU 0) but no memory.
    assert sorted(p['memory_node'] for p in plan['placement']) == [0, 1]


def test_no_smt():
    facts = synth(sockets=2, cores_per_node=8, threads=1, numbering='adjacent')
    plan = _planner.plan_host(facts, {'partitions': [{'name': 'p', 'cpus': 3, 'node': 1, 'memory': '1G'},
                                                     {'name': 'q', 'cpus': 3, 'memory': '1G', 'smt': 'single'}]}, 'h')
    check(plan, facts)
    assert plan['partitions'][0]['cpus'] == '9-11' and plan['placement'][0]['threads'] == 3


def test_devices_follow_their_node_and_pull_a_packed_partition_there():
    devices = [{'type': NIC, 'node': 0, 'count': 2}, {'type': NVME, 'node': 0, 'count': 1},
               {'type': NIC, 'node': 1, 'count': 1}, {'type': NVME, 'node': 1, 'count': 2},
               {'type': GPU, 'node': 1, 'count': 1}]
    facts = intel_2s(devices=devices)
    intent = {'partitions': [
        {'name': 'net', 'cpus': 4, 'memory': '4G', 'devices': [{'class': 'net'}]},
        {'name': 'gpu', 'cpus': 4, 'memory': '4G', 'devices': [{'class': 'gpu'}, {'class': 'nvme', 'count': 2}]},
    ]}
    plan = _planner.plan_host(facts, intent, 'h')
    check(plan, facts)
    by_address = dict((d['address'], d) for d in facts['pci']['devices'])
    for part, place in zip(plan['partitions'], plan['placement']):
        assert all(by_address[a]['numa_node'] == place['memory_node'] for a in part['devices']), part
    assert plan['placement'][1]['nodes'] == [1] and len(plan['partitions'][1]['devices']) == 3
    # The gpu partition is the largest-first tie winner by order; both NVMe on node 1 are its.
    assert plan['warnings'] == []


def test_remote_device_when_none_is_local_and_require_refuses():
    facts = intel_2s(devices=[{'type': NIC, 'node': 0, 'count': 2}, {'type': NVME, 'node': 0, 'count': 1}])
    prefer = {'partitions': [{'name': 'p', 'cpus': 2, 'node': 1, 'memory': '1G', 'devices': [{'class': 'net'}]}]}
    plan = _planner.plan_host(facts, prefer, 'h')
    check(plan, facts)
    assert plan['partitions'][0]['devices'] == ['0000:17:01.0']
    assert plan['warnings'] == ['p: 1 net device from another node than its node 1 (none left there)']
    require = copy.deepcopy(prefer)
    require['partitions'][0]['devices'][0]['local'] = 'require'
    plan = _planner.plan_host(facts, require, 'h')
    assert plan['refused']
    assert plan['reasons'] == [
        'p asks for 1 net on its node 1; none can be given. Not usable: 0000:17:00.0 (ens1f0) is the Boot '
        'Kernel\'s: carries the SSH connection Ansible uses; carries the default route; ens1f0 is up with address '
        '10.0.0.5/24; 0000:17:01.0 (ens1f1) is on node 0, not on p\'s node 1']


def test_partial_iommu_group_is_never_taken_and_companions_come_along():
    devices = [{'type': NIC, 'node': 0, 'count': 1},                       # the SSH NIC
               {'type': NIC, 'node': 1, 'count': 1, 'functions': 2},       # one group: ens2f0 + ens2f1
               {'type': NVME, 'node': 1, 'count': 1}]
    facts = intel_2s(devices=devices)
    pair = [d for d in facts['pci']['devices'] if d['net'] and d['numa_node'] == 1]
    pair[1]['in_use'] = ['ens2f1 is up with address 192.0.2.9/24']
    intent = {'partitions': [{'name': 'p', 'cpus': 2, 'node': 1, 'memory': '1G', 'devices': [{'class': 'net'}]}]}
    plan = _planner.plan_host(facts, intent, 'h')
    assert plan['refused']
    assert plan['reasons'] == [
        'p asks for 1 net; none can be given. Not usable: 0000:17:00.0 (ens1f0) is the Boot Kernel\'s: carries '
        'the SSH connection Ansible uses; carries the default route; ens1f0 is up with address 10.0.0.5/24; '
        '0000:37:00.1 (ens2f1) is the Boot Kernel\'s: ens2f1 is up with address 192.0.2.9/24; 0000:37:00.0 '
        '(ens2f0) shares IOMMU group 12 with 0000:37:00.1 (ens2f1), and a partition takes whole groups only']
    # Free the second port: asking for one NIC gives the whole group, and says so.
    pair[1]['in_use'] = []
    two = copy.deepcopy(intent)
    plan = _planner.plan_host(facts, two, 'h')
    assert plan['refused'] and 'come as one IOMMU group of 2, more than the 1 still wanted' in plan['reasons'][0]
    two['partitions'][0]['devices'][0]['count'] = 2
    plan = _planner.plan_host(facts, two, 'h')
    check(plan, facts)
    assert plan['partitions'][0]['devices'] == ['0000:37:00.0', '0000:37:00.1']
    # A companion that does not match the request (an NVMe function in the NIC's group) comes along too.
    facts['pci']['devices'].append(dict(pair[0], address='0000:37:00.2', **{
        'class': '0x010802', 'net': [], 'block': ['nvme9n1'], 'vendor': '144d', 'device': 'a824', 'driver': 'nvme'}))
    plan = _planner.plan_host(facts, two, 'h')
    check(plan, facts)
    assert plan['partitions'][0]['devices'] == ['0000:37:00.0', '0000:37:00.1', '0000:37:00.2']
    assert plan['warnings'] == ['p also takes 0000:37:00.2 (nvme9n1): it shares IOMMU group 12 with a device it '
                                'asked for']


def test_refusal_lists_every_reason():
    facts = intel_2s()
    intent = {'partitions': [
        {'name': 'web', 'cpus': 20, 'node': 1, 'memory': '512G'},
        {'name': 'gpu', 'cpus': 2, 'memory': '1G', 'devices': [{'class': 'gpu'}]},
        {'name': 'ok', 'cpus': 2, 'node': 0, 'memory': '1G'},
        {'name': 'tiny', 'cpus': '1%', 'node': 0, 'memory': '1G'},
    ]}
    plan = _planner.plan_host(facts, intent, 'h')
    assert plan['refused'] and plan['partitions'] == []
    assert plan['reasons'] == [
        'node 1 has 15 free whole cores (16 whole cores: 1 kept for the Boot Kernel); web asks for 20',
        'node 1 has 115G for partitions (115G left in whole 1G units; 115.2G free); web asks for 512G',
        'gpu asks for 1 gpu; no device on this host matches',
        'tiny asks for 1% of node 0\'s 15 whole cores for partitions, less than one core',
    ]


def test_determinism_and_no_dependence_on_other_hosts():
    facts = intel_2s()
    identity = {'name': 'node17.example.com', 'index': 17}
    first = dumps(_planner.plan_host(facts, INTENT, identity))
    # Plan a crowd of other hosts, of other shapes and numberings, then this one again, cache warm and cold.
    for index, other in enumerate([amd_nps4(), intel_2s(numbering='interleaved'), intel_2s(bus_offset=3),
                                   synth(threads=1, numbering='adjacent')]):
        _planner.plan_host(other, INTENT, {'name': 'other%d' % index, 'index': index})
    assert dumps(_planner.plan_host(facts, INTENT, identity)) == first
    assert dumps(_planner.plan_host(copy.deepcopy(facts), copy.deepcopy(INTENT), identity, cache=False)) == first
    _planner.clear_caches()
    assert dumps(_planner.plan_host(copy.deepcopy(facts), INTENT, identity)) == first


def test_cached_and_uncached_plans_agree_across_variants():
    shapes = [intel_2s(numbering=n, bus_offset=b, free_fraction=f)
              for n in ('split', 'adjacent', 'interleaved') for b in (0, 5) for f in (0.5, 0.9)]
    shapes += [amd_nps4(bus_offset=b) for b in (0, 1)]
    plans = [_planner.plan_host(f, INTENT, {'name': 'h%d' % i, 'index': i}) for i, f in enumerate(shapes)]
    again = [_planner.plan_host(f, INTENT, {'name': 'h%d' % i, 'index': i}) for i, f in enumerate(shapes)]
    _planner.clear_caches()
    cold = [_planner.plan_host(f, INTENT, {'name': 'h%d' % i, 'index': i}, cache=False) for i, f in enumerate(shapes)]
    assert [dumps(p) for p in plans] == [dumps(p) for p in again] == [dumps(p) for p in cold]
    for plan, facts in zip(plans, shapes):
        check(plan, facts)


def test_one_model_two_numberings_same_class_same_shape_own_cpus():
    a, b = intel_2s(), intel_2s(numbering='interleaved', bus_offset=4)
    plan_a = _planner.plan_host(a, INTENT, {'name': 'a', 'index': 1})
    plan_b = _planner.plan_host(b, INTENT, {'name': 'b', 'index': 2})
    check(plan_a, a)
    check(plan_b, b)
    assert plan_a['fingerprint'] == plan_b['fingerprint']
    assert plan_a['placement'] == plan_b['placement']
    assert plan_a['partitions'][0]['cpus'] != plan_b['partitions'][0]['cpus']
    assert plan_a['partitions'][0]['devices'] == ['0000:37:00.0'] and plan_b['partitions'][0]['devices'] == [
        '0000:3b:00.0']


def test_housekeeping_per_socket_keeps_cpu0_core():
    facts = amd_nps4()
    intent = {'housekeeping': {'cores_per_socket': 2}, 'partitions': [
        {'name': 'all', 'cpus': 'rest', 'placement': 'spread', 'memory': '1G'}]}
    plan = _planner.plan_host(facts, intent, 'h')
    got = check(plan, facts)
    assert plan['housekeeping'] == {'cpus': '0-1,64-65,128-129,192-193', 'cores': 4}
    assert len(got['all']) == 256 - 8
    zero = {'housekeeping': {'cores_per_node': 0}, 'partitions': [
        {'name': 'all', 'cpus': 'rest', 'placement': 'spread', 'memory': '1G'}]}
    plan = _planner.plan_host(facts, zero, 'h')
    check(plan, facts)
    assert plan['housekeeping'] == {'cpus': '0,128', 'cores': 1}


def test_parker_limit_of_512_cpus():
    facts = synth(sockets=2, cores_per_node=160, threads=2, node_gib=64)
    plan = _planner.plan_host(facts, {'housekeeping': {'cores_per_node': 0}, 'partitions': [
        {'name': 'big', 'cpus': 300, 'placement': 'spread', 'memory': '1G'}]}, 'h')
    assert plan['refused'] and plan['reasons'] == ['big would get 600 CPUs; Parker allows 512 per partition']


def test_existing_partitions_own_and_foreign():
    devices = [{'type': NIC, 'node': 0, 'count': 2}, {'type': NVME, 'node': 0, 'count': 1},
               {'type': NIC, 'node': 1, 'count': 2}, {'type': NVME, 'node': 1, 'count': 2}]
    base = intel_2s(devices=devices)
    plan = _planner.plan_host(base, INTENT, {'name': 'n', 'index': 1})
    web, db = plan['partitions'][0], plan['partitions'][1]
    assert db['devices'] == ['0000:37:02.0']
    # After bring-up the facts show web holding its CPUs and memory and claiming its NIC, and a partition
    # "legacy" the intent does not know holding CPUs 3-4,35-36 and node 1's second NVMe.
    parts = [{'name': 'web', 'cpus': web['cpus'], 'memory': {'size': 16 << 30, 'start': 1 << 40},
              'devices': web['devices']},
             {'name': 'legacy', 'cpus': '3-4,35-36', 'memory': {'size': 4 << 30, 'start': 1 << 41},
              'devices': ['0000:37:03.0']}]
    facts = intel_2s(devices=devices, parker_partitions=parts)
    for node in facts['numa']['nodes']:
        node['mem_free'] -= (16 << 30) if node['id'] == 1 else (4 << 30)
    for dev in facts['pci']['devices']:
        dev['claimed_by'] = {'0000:37:00.0': 'web', '0000:37:03.0': 'legacy'}.get(dev['address'])
    again = _planner.plan_host(facts, INTENT, {'name': 'n', 'index': 1})
    check(again, facts)
    assert not again['refused'], again['reasons']
    assert again['partitions'][0] == web     # its own resources are its again
    taken = set()
    for part in again['partitions']:
        taken |= parse_cpulist(part['cpus'])
    assert not taken & {3, 4, 35, 36}
    # Two NVMe for db on node 1: legacy holds one of them, and the reason says so.
    strict = copy.deepcopy(INTENT)
    strict['partitions'][1]['devices'][0].update(count=2, local='require')
    strict['partitions'][1]['node'] = 1
    plan = _planner.plan_host(facts, strict, {'name': 'n', 'index': 1})
    assert plan['refused']
    assert plan['reasons'] == [
        'db asks for 2 nvme on its node 1; only 1 can be given (0000:37:02.0 (nvme1n1)). Not usable: 0000:17:02.0 '
        '(nvme0n1) is the Boot Kernel\'s: holds the root filesystem; /dev/nvme0n1p2 is mounted at /; 0000:37:03.0 '
        '(nvme2n1) is held by Parker partition legacy, which this intent does not have']


def test_hardware_class_mismatch_and_missing_topology():
    facts = intel_2s()
    fingerprint = _fingerprint.hardware_fingerprint(facts)['id']
    intent = dict(INTENT, hardware_class=fingerprint)
    assert not _planner.plan_host(facts, intent, {'name': 'n', 'index': 1})['refused']
    other = amd_nps4()
    plan = _planner.plan_host(other, intent, {'name': 'n', 'index': 1})
    assert plan['refused'] and plan['reasons'][0].startswith('this host\'s hardware class is %s (AMD EPYC'
                                                             % plan['fingerprint'])
    gone = intel_2s(no_topology=(20, 52), offline=(20, 52))
    plan = _planner.plan_host(gone, INTENT, {'name': 'n', 'index': 1})
    assert plan['refused'] and plan['reasons'][0].startswith('CPUs 20,52 have no topology in the facts')


def test_memory_units_block_cma_and_rounding():
    facts = intel_2s(block_size=128 << 20)
    intent = {'memory_unit': 'block', 'partitions': [{'name': 'p', 'cpus': 1, 'node': 0, 'memory': '200M'}]}
    plan = _planner.plan_host(facts, intent, 'h')
    assert plan['partitions'][0]['memory'] == '256M' and plan['memory_unit'] == '128M'
    intent = {'partitions': [{'name': 'p', 'cpus': 1, 'node': 0, 'memory': '1536M'}]}
    assert _planner.plan_host(facts, intent, 'h')['partitions'][0]['memory'] == '2G'
    cma = {'known': True, 'areas': [{'node': 0, 'size': 8 << 30}, {'node': 1, 'size': 0}]}
    facts = intel_2s(cma=cma)
    intent = {'memory_pool': 'cma', 'partitions': [{'name': 'p', 'cpus': 1, 'node': 0, 'memory': '50%'},
                                                   {'name': 'q', 'cpus': 1, 'node': 1, 'memory': '1G'}]}
    plan = _planner.plan_host(facts, intent, 'h')
    assert plan['refused'] and plan['reasons'] == [
        'node 1 has 0 for partitions (0 left in whole 1G units; 0 in its Parker CMA area); q asks for 1G']
    del intent['partitions'][1]
    assert _planner.plan_host(facts, intent, 'h')['partitions'][0]['memory'] == '4G'
    reserve = {'housekeeping': {'memory_per_node': '100G'}, 'partitions': [
        {'name': 'p', 'cpus': 1, 'node': 0, 'memory': '50%'}]}
    # 128G x 0.9 free = 115.2G, less 100G for the Boot Kernel: 15G, half of it 7G in whole GiB.
    assert _planner.plan_host(intel_2s(), reserve, 'h')['partitions'][0]['memory'] == '7G'


def test_network_from_pool_host_vars_and_refusals():
    facts = intel_2s()
    intent = copy.deepcopy(INTENT)
    intent['partitions'][0]['network']['iface'] = 'eth0'
    plan = _planner.plan_host(facts, intent, {'name': 'n1', 'index': 0, 'networks': {
        'db': {'address': '192.0.2.20/24', 'gateway': '192.0.2.1', 'hostname': 'db-main'}}})
    assert plan['partitions'][0]['network'] == {'address': '10.77.0.16/16', 'gateway': '10.77.0.1',
                                                'hostname': 'n1-web', 'iface': 'eth0'}
    assert plan['partitions'][1]['network'] == {'address': '192.0.2.20/24', 'gateway': '192.0.2.1',
                                                'hostname': 'db-main'}
    plan = _planner.plan_host(facts, intent, {'name': 'n1'})
    assert plan['refused'] and plan['reasons'] == [
        'web\'s address comes from pool fabric, which needs this host\'s index (host_identity.index, e.g. the host '
        'variable parker_host_index); none given']
    plan = _planner.plan_host(facts, intent, {'name': 'n1', 'index': 20000})
    assert plan['reasons'] == ['web: host index 20000 x stride 4 + slot 0 + first 16 = offset 80016 is beyond pool '
                               'fabric (10.77.0.0/16, 65536 addresses)']
    gateway = copy.deepcopy(intent)
    gateway['address_pools']['fabric'].update(first=0, gateway='10.77.0.8')
    plan = _planner.plan_host(facts, gateway, {'name': 'n1', 'index': 2})
    assert plan['reasons'] == ['web: host index 2 x stride 4 + slot 0 + first 0 = offset 8 is pool fabric\'s gateway '
                               '10.77.0.8']
    plan = _planner.plan_host(facts, intent, {'name': 'n1', 'index': 0, 'networks': {'nope': {'address': '1.2.3.4/8'}}})
    assert plan['warnings'] == ['host_identity.networks names nope, which the intent has no partition for']


def test_unknown_node_is_an_intent_error():
    with pytest.raises(IntentError) as exc:
        _planner.plan_host(intel_2s(), {'partitions': [{'name': 'p', 'cpus': 1, 'node': 3, 'memory': '1G'}]}, 'h')
    assert str(exc.value) == ('parker intent: partitions[0] (p).node: node 3 does not exist on this host '
                              '(nodes: 0-1)')


def test_rest_of_a_node_after_the_others():
    facts = intel_2s()
    intent = {'partitions': [
        {'name': 'rest1', 'cpus': 'rest', 'node': 1, 'memory': '1G'},
        {'name': 'five', 'cpus': 5, 'node': 1, 'memory': '1G'},
    ]}
    plan = _planner.plan_host(facts, intent, 'h')
    got = check(plan, facts)
    assert len(got['five']) == 10 and len(got['rest1']) == 20
    assert [p['name'] for p in plan['partitions']] == ['rest1', 'five']   # intent order, whatever the phase


def test_fingerprint_outliers():
    hosts = dict(('n%d' % i, _fingerprint.hardware_fingerprint(intel_2s(bus_offset=i))) for i in range(4))
    hosts['odd'] = _fingerprint.hardware_fingerprint(intel_2s(node_gib=[128, 64]))
    found = _fingerprint.outliers(hosts, {'db': sorted(hosts)})
    assert len(found) == 1 and found[0]['host'] == 'odd' and found[0]['expected'] == hosts['n0']['id']
    assert found[0]['differences'] == ['node 1 memory gib 64 instead of 128']
    classes = _fingerprint.hardware_classes(hosts)
    assert classes[hosts['n0']['id']]['hosts'] == ['n0', 'n1', 'n2', 'n3']
    # Plans carry their fingerprint too.
    plan = _planner.plan_host(intel_2s(), INTENT, {'name': 'x', 'index': 1})
    assert _fingerprint.hardware_classes({'x': plan}) == {plan['fingerprint']: {'summary': plan['hardware'],
                                                                                'hosts': ['x']}}


def test_fingerprint_ignores_numbering_addresses_and_reservations():
    base = _fingerprint.hardware_fingerprint(intel_2s())
    assert _fingerprint.hardware_fingerprint(intel_2s(numbering='interleaved', bus_offset=9))['id'] == base['id']
    reserved = intel_2s()
    for node in reserved['numa']['nodes']:
        node['mem_total'] -= 3 << 30
        node['mem_free'] //= 3
    assert _fingerprint.hardware_fingerprint(reserved)['id'] == base['id']
    assert _fingerprint.hardware_fingerprint(intel_2s(model='Other'))['id'] != base['id']
    assert _fingerprint.hardware_fingerprint(amd_nps4())['shape']['nodes'][0]['llc'] == [8, 8]


def test_byte_identical_across_hash_seeds():
    """No set or dict order leaks into a plan, a fingerprint or a picture: other processes, other hash seeds."""
    import os
    import subprocess
    import sys
    script = '\n'.join([
        'import json, sys',
        'sys.path[:0] = %r' % sys.path[:],
        'from ansible_collections.parker.kernel.tests.unit.synthfacts import amd_nps4, intel_2s',
        'from ansible_collections.parker.kernel.tests.unit.plugins.module_utils.test_planner import INTENT',
        'from ansible_collections.parker.kernel.plugins.module_utils import _planner, _picture, _fingerprint',
        'out = []',
        'for facts in (amd_nps4(), intel_2s(numbering="interleaved")):',
        '    plan = _planner.plan_host(facts, INTENT, {"name": "h", "index": 5})',
        '    out.append(json.dumps(plan))',
        '    out.append(json.dumps(_fingerprint.hardware_fingerprint(facts)))',
        '    out.append(_picture.host_svg(facts, plan))',
        'sys.stdout.write("\\n".join(out))',
    ])
    here = os.path.dirname(os.path.abspath(__file__))
    outputs = set()
    for seed in ('1', '2', '12345'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, '-c', script], env=env, cwd=here, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1 and len(outputs.pop()) > 10000


def test_one_node_host_devices_without_a_node_are_local():
    facts = synth(sockets=1, cores_per_node=8, devices=[{'type': NIC, 'node': 0, 'count': 3, 'numa_node': -1}])
    plan = _planner.plan_host(facts, {'partitions': [{'name': 'p', 'cpus': 2, 'memory': '1G',
                                                      'devices': [{'class': 'net', 'local': 'require'}]}]}, 'h')
    check(plan, facts)
    assert plan['partitions'][0]['devices'] == ['0000:17:01.0'] and plan['warnings'] == []


def test_facts_without_numa_or_pci():
    facts = intel_2s()
    del facts['pci']
    plan = _planner.plan_host(facts, INTENT, {'name': 'n', 'index': 1})
    assert plan['reasons'][0] == 'the intent asks for devices but the facts have no pci subset (gather it)'
    del facts['numa']
    with pytest.raises(IntentError) as exc:
        _planner.plan_host(facts, INTENT, {'name': 'n', 'index': 1})
    assert 'at least the cpus and numa subsets' in str(exc.value)


REASONS = []


def test_random_hosts_and_intents_keep_the_invariants():
    """A fixed-seed sweep: random shapes, numberings, devices (in use, claimed, shared groups) and intents."""
    import random
    rng = random.Random(1212)
    kinds = [NIC, NVME, GPU]
    planned = refused = 0
    for round_ in range(150):
        sockets = rng.choice([1, 2])
        per_socket = rng.choice([1, 2, 4])
        cores = rng.choice([4, 6, 8, 16])
        nodes = sockets * per_socket
        devices = [{'type': rng.choice(kinds), 'node': rng.randrange(nodes), 'count': rng.randint(1, 3),
                    'functions': rng.choice([1, 1, 2])} for _device in range(rng.randint(0, 6))]
        facts = synth(sockets=sockets, nodes_per_socket=per_socket, cores_per_node=cores,
                      threads=rng.choice([1, 2]), llc_cores=rng.choice([None, 2, 4]),
                      numbering=rng.choice(['split', 'adjacent', 'interleaved']) if sockets == 2 else 'split',
                      memoryless=(nodes - 1,) if nodes > 1 and rng.random() < 0.2 else (),
                      node_gib=rng.choice([8, 32, 64]), devices=devices, bus_offset=rng.randrange(8))
        for dev in facts['pci']['devices']:
            if rng.random() < 0.1:
                dev['in_use'] = ['random use']
        parts = []
        for number in range(rng.randint(1, 4)):
            part = {'name': 'p%d' % number, 'memory': rng.choice(['1G', '2G', '10%', '30%'])}
            shape = rng.random()
            if shape < 0.5:
                part['cpus'] = rng.randint(1, cores)
            elif shape < 0.8:
                part['cpus'] = rng.choice(['10%', '20%'])
            else:
                part['cpus'] = 'rest'
                part['node'] = number % nodes
            if rng.random() < 0.3 and part['cpus'] != 'rest':
                part['node'] = rng.randrange(nodes)
            elif rng.random() < 0.2 and 'node' not in part:
                part['placement'] = 'spread'
            if rng.random() < 0.2:
                part['smt'] = 'single'
            if rng.random() < 0.5:
                part['devices'] = [{'class': rng.choice(['net', 'nvme', 'gpu']), 'count': rng.randint(1, 2)}]
            parts.append(part)
        rests = [p.get('node') for p in parts if p['cpus'] == 'rest']
        if len(set(rests)) != len(rests):
            continue
        intent = {'housekeeping': {rng.choice(['cores_per_node', 'cores_per_socket']): rng.randint(0, 2)},
                  'partitions': parts}
        identity = {'name': 'r%d' % round_, 'index': round_}
        plan = _planner.plan_host(facts, intent, identity)
        check(plan, facts)
        assert dumps(plan) == dumps(_planner.plan_host(copy.deepcopy(facts), intent, identity, cache=False))
        if plan['refused']:
            refused += 1
            assert all(isinstance(r, str) and r for r in plan["reasons"])
            REASONS.extend(plan["reasons"])
        else:
            planned += 1
    assert planned > 30 and refused > 10, (planned, refused)


def test_llc_domains_are_known_by_their_first_cpu():
    """Offline CPUs leave their siblings' shared_cpu_list; a cached topology keeps the old list: one domain."""
    from ansible_collections.parker.kernel.plugins.module_utils import _topology
    whole = _topology.cpu_topology(amd_nps4()['cpus'])
    facts = amd_nps4(offline=(5, 133))
    for cpu in facts['cpus']['list']:
        if cpu['id'] in (5, 133):
            cpu['llc'] = '0-7,128-135'     # what cpu_offline cached while it was online
    assert facts['cpus']['list'][0]['llc'] == '0-4,6-7,128-132,134-135'
    part = _topology.cpu_topology(facts['cpus'])
    assert part.groups == whole.groups and part.shape == whole.shape
    assert _fingerprint.hardware_fingerprint(facts)['id'] == _fingerprint.hardware_fingerprint(amd_nps4())['id']


def test_a_partition_stays_on_one_die_before_one_llc():
    facts = synth(sockets=1, nodes_per_socket=1, cores_per_node=16, dies_per_node=2, llc_cores=4, threads=1,
                  numbering='adjacent')
    plan = _planner.plan_host(facts, {'partitions': [{'name': 'p', 'cpus': 6, 'memory': '1G'}]}, 'h')
    check(plan, facts)
    # Die 0 has 7 free cores (core 0 is housekeeping) in LLC domains of 3 and 4; die 1 has 8.
    assert plan['placement'][0]['dies'] == 1 and plan['placement'][0]['llc_domains'] == 2
    assert plan['partitions'][0]['cpus'] == '1-2,4-7'   # all of LLC 4-7, two of 1-3
