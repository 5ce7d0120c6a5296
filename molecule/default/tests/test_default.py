"""Verify partition p1 on the guest's real kernel after `molecule converge`.

p1 (playbooks/vars/fleet-carve.yml): CPUs 2-3, 256M from NUMA node 1,
the scratch disk vdb. Molecule runs this with testinfra's ansible connection
against its own inventory; the baseline (prepare.yml) and the check-mode proof
(converge.yml) are read from the scenario's ephemeral directory, and the DIMM
layout is asked from QEMU itself over QMP.
"""
import json
import os
import subprocess

import pytest
import yaml

EPHEMERAL = os.environ['MOLECULE_EPHEMERAL_DIRECTORY']
PROJECT = os.environ.get('MOLECULE_PROJECT_DIRECTORY') or os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..', '..'))
FLEET = os.path.join(PROJECT, 'tools', 'fleet', 'fleet')
FLEET_DIR = os.environ.get('PARKER_MOLECULE_FLEET_DIR') or os.path.join(PROJECT, '.fleet-molecule')

P1_CPUS = {2, 3}
P1_NODE = 1
P1_BYTES = 256 << 20
SCRATCH_DISK = 'vdb'


def cpulist(text):
    """Expand a kernel/lscpu cpulist ('0-1', '2,3', '') into a set."""
    cpus = set()
    for part in text.strip().split(','):
        if not part:
            continue
        lo, _sep, hi = part.partition('-')
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def snapshot_dict(lines):
    """The kernel-state.yml snapshot as {key: value} for the single-valued keys."""
    out = {}
    for line in lines:
        key, _sep, value = line.strip().partition(' ')
        out.setdefault(key, value.strip())
    return out


def read_json(name):
    path = os.path.join(EPHEMERAL, name)
    assert os.path.exists(path), '%s is missing: did prepare/check run in this scenario?' % path
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture(scope='module')
def name(host):
    return host.backend.host


@pytest.fixture(scope='module')
def baseline(name):
    return read_json('baseline-%s.json' % name)['snapshot']


@pytest.fixture(scope='module')
def node1_dimm(name):
    """The pc-dimm QEMU placed on node 1, from QMP: {'addr': ..., 'size': ...}."""
    guest = fleet_guest_name(name)
    out = subprocess.run([FLEET, 'qmp', '--state-dir', FLEET_DIR, guest, 'query-memory-devices'],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    dimms = [d['data'] for d in json.loads(out)['return'] if d.get('type') == 'dimm']
    on_node = [d for d in dimms if d['node'] == P1_NODE]
    assert len(on_node) == 1, dimms
    return on_node[0]


def fleet_guest_name(instance):
    """Map a Molecule instance onto its fleet guest through the instance config create.yml wrote."""
    path = os.environ.get('MOLECULE_INSTANCE_CONFIG') or os.path.join(EPHEMERAL, 'instance_config.yml')
    with open(path) as handle:
        for item in yaml.safe_load(handle) or []:
            if item['instance'] == instance:
                return item.get('fleet_guest', instance)
    raise AssertionError('no instance %s in %s' % (instance, path))


def test_cpus_2_3_offline_in_sysfs(host):
    assert cpulist(host.file('/sys/devices/system/cpu/offline').content_string) == P1_CPUS
    assert cpulist(host.file('/sys/devices/system/cpu/online').content_string) == {0, 1}
    for cpu in sorted(P1_CPUS):
        assert host.file('/sys/devices/system/cpu/cpu%d/online' % cpu).content_string.strip() == '0'


def test_cpus_2_3_offline_in_lscpu(host):
    fields = {f['field'].rstrip(':'): f['data'] for f in json.loads(host.check_output('lscpu -J'))['lscpu']}
    assert cpulist(fields['On-line CPU(s) list']) == {0, 1}
    assert cpulist(fields['Off-line CPU(s) list']) == P1_CPUS
    per_cpu = dict(line.split(',') for line in host.check_output('lscpu --all --parse=CPU,ONLINE').splitlines()
                   if not line.startswith('#'))
    assert per_cpu == {'0': 'Y', '1': 'Y', '2': 'N', '3': 'N'}


def test_node1_dimm_blocks_offline(host, node1_dimm):
    block_size = int(host.file('/sys/devices/system/memory/block_size_bytes').content_string.strip(), 16)
    assert node1_dimm['size'] == P1_BYTES
    first = node1_dimm['addr'] // block_size
    blocks = list(range(first, first + node1_dimm['size'] // block_size))
    assert len(blocks) == 2, (node1_dimm, block_size)
    for block in blocks:
        sysfs = '/sys/devices/system/memory/memory%d' % block
        assert host.file(sysfs + '/state').content_string.strip() == 'offline'
        assert host.file('%s/node%d' % (sysfs, P1_NODE)).exists, 'block %d is not on node %d' % (block, P1_NODE)
    # Nothing else was taken: every other block is still online.
    offline = host.check_output(
        'grep -l offline /sys/devices/system/memory/memory[0-9]*/state | sed "s|.*/memory\\([0-9]*\\)/state|\\1|"')
    assert sorted(int(b) for b in offline.split()) == blocks


def test_memtotal_lower_by_256m(host, baseline):
    before = int(snapshot_dict(baseline)['memtotal_kb'])
    now = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    assert before - now == P1_BYTES // 1024, (before, now)


def test_scratch_disk_detached(host, baseline):
    pci = snapshot_dict(baseline)['scratch_pci']
    device = '/sys/bus/pci/devices/%s' % pci
    assert host.file(device).exists, 'the PCI device itself must stay'
    assert not host.file(device + '/driver').exists
    assert host.file(device + '/driver_override').content_string.strip() == 'none'
    assert not host.file('/sys/block/%s' % SCRATCH_DISK).exists


def test_other_devices_keep_their_drivers(host, baseline):
    scratch = snapshot_dict(baseline)['scratch_pci']
    before = dict((line.split()[1], line.split()[2]) for line in baseline if line.startswith('pci '))
    for address, driver in sorted(before.items()):
        if address == scratch:
            continue
        link = '/sys/bus/pci/devices/%s/driver' % address
        assert host.file(link).linked_to.endswith('/' + driver) if driver != '-' else not host.file(link).exists


def test_check_mode_changed_nothing(name, baseline):
    """converge.yml wrote this proof during the `check` step (and asserted it there too).

    scripts/molecule sets PARKER_MOLECULE_REQUIRE_CHECK=1 for `molecule test`, whose
    sequence runs check on the fresh guest right before converge. A hand-run
    `molecule converge` + `verify` may not have run check at all: then this skips.
    """
    required = os.environ.get('PARKER_MOLECULE_REQUIRE_CHECK') == '1'
    if not required and not os.path.exists(os.path.join(EPHEMERAL, 'check-mode-%s.json' % name)):
        pytest.skip('no check step ran in this scenario instance')
    proof = read_json('check-mode-%s.json' % name)
    assert proof['before'] == proof['after'], 'the check-mode run changed the kernel'
    if required:
        # The check run started from the untouched guest prepare.yml recorded...
        assert proof['before'] == baseline
        # ...and predicted the carve: a real dry run of carve.yml, not a no-op.
        assert proof['predicted_memory'] and all(len(blocks) == 2 for blocks in proof['predicted_memory'])
