import os

import pytest

from ansible_collections.parker.kernel.tests.unit.fakehost import FakeHost
from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO
from ansible_collections.parker.kernel.plugins.module_utils import _facts


def test_all_subsets_on_the_default_host(host, monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    facts = _facts.gather(HostIO(host.root, environ=dict(os.environ)))
    assert facts['cpus']['present'] == '0-7' and facts['cpus']['boot_cpus'] == '0'
    assert facts['cpus']['list'][3]['thread_siblings'] == '2-3'
    assert [n['cpus'] for n in facts['numa']['nodes']] == ['0-3', '4-7']
    assert facts['memory']['block_size'] == 128 << 20
    movable = [b['id'] for b in facts['memory']['blocks'] if b['valid_zones'] == ['Movable']]
    assert movable == [32, 33, 34, 35]
    assert facts['reservations']['crash_kernel'][0]['start'] == 0x37000000
    by_addr = dict((d['address'], d) for d in facts['pci']['devices'])
    assert by_addr['0000:00:05.0']['ssh'] and by_addr['0000:00:05.0']['default_route']
    assert by_addr['0000:00:02.0']['root_fs'] and not by_addr['0000:00:03.0']['root_fs']
    assert by_addr['0000:00:03.0']['block'] == ['vdb'] and by_addr['0000:00:03.0']['driver'] == 'virtio-pci'
    assert facts['kexec'] == {'loaded': False, 'crash_loaded': False, 'crash_size': 128 << 20,
                              'kexec_load_disabled': False, 'lockdown': 'none'}
    assert facts['kernel']['config']['MEMORY_HOTREMOVE'] == 'y' and facts['kernel']['config']['PARKER'] == 'n'
    assert facts['kernel']['bootloader']['type'] == 'grub'
    assert facts['parker'] == {'root': '/sys/fs/parker', 'present': False, 'mounted': False, 'fs_type': None,
                               'filesystem_available': False, 'filesystem_source': None,
                               'partitions': [], 'blocked_starts': [], 'cma': None}


def test_ssh_falls_back_to_established_port_22(host):
    host.write('/proc/net/tcp', '  sl  local_address rem_address   st\n'
                                '   0: 0F02000A:0016 0202000A:C350 01 00000000:00000000\n')
    pci = _facts.pci_facts(HostIO(host.root, environ={}))
    assert pci['ssh_interface'] == 'eth0' and pci['ssh_address_source'] == '/proc/net/tcp'


def test_parker_partitions_are_read(host):
    host.parker_kernel()
    base = '/sys/fs/parker/p1'
    for name, value in (('id', '1'), ('cpus', '2-3'), ('memory', '536870912@0x100000000'), ('online', '0'),
                        ('control_structure', '0x1417d9000')):
        host.write(base + '/' + name, value)
    os.makedirs(host.path(base + '/devices/0000:00:03.0'))
    facts = _facts.parker_facts(HostIO(host.root))
    assert facts['partitions'][0]['memory'] == {'size': 536870912, 'start': 0x100000000}
    assert _facts.parker_claims(HostIO(host.root)) == ({2, 3}, {'0000:00:03.0'})


@pytest.mark.parametrize('line,expected', [
    ('00000000-00000fff : Reserved', (0, 0, 0xfff, 'Reserved')),
    ('  37000000-3effffff : Crash kernel', (1, 0x37000000, 0x3effffff, 'Crash kernel')),
])
def test_parse_iomem(line, expected):
    assert _facts.parse_iomem(line) == [expected]


def test_large_synthetic_host(tmp_path):
    host = FakeHost(tmp_path / 'big').build_large()
    facts = _facts.gather(HostIO(host.root, environ={}))
    assert len(facts['cpus']['list']) == 1024 and facts['cpus']['online'] == '0-1023'
    assert len(facts['numa']['nodes']) == 8
    assert len(facts['memory']['blocks']) == 4096
    assert all(b['node'] is not None for b in facts['memory']['blocks'])
    assert len(facts['pci']['devices']) == 512


def test_ssh_over_a_bond_marks_its_physical_slaves(host):
    # bond0 (virtual) carries SSH and the default route; eth1 is its slave.
    os.makedirs(host.path('/sys/devices/virtual/net/bond0'))
    host.symlink('/sys/devices/virtual/net/bond0', '/sys/class/net/bond0')
    host.symlink('/sys/class/net/eth1', '/sys/devices/virtual/net/bond0/lower_eth1')
    host.write('/proc/net/route', 'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n'
                                  'bond0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\n'
                                  'bond0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n')
    pci = _facts.pci_facts(HostIO(host.root, environ={'SSH_CONNECTION': '10.0.2.2 5 10.0.2.15 22'}))
    eth1 = [d for d in pci['devices'] if d['net'] == ['eth1']][0]
    assert pci['ssh_interface'] == 'bond0' and eth1['ssh'] and eth1['default_route']


def test_llc_domains_and_model(tmp_path):
    host = FakeHost(tmp_path / 'ccx').build(sockets=2, cores=4, threads=2, nodes=2, llc_cores=2, offline_cpus=(7,))
    io = HostIO(host.root)
    reads = []
    real_read = io.read

    def counting(rel, *args, **kwargs):
        if rel.endswith('/cache/index3/shared_cpu_list'):
            reads.append(rel)
        return real_read(rel, *args, **kwargs)
    io.read = counting
    facts = _facts.cpu_facts(io)
    llc = dict((c['id'], c['llc']) for c in facts['list'])
    assert llc[0] == llc[3] == '0-3' and llc[4] == '4-6' and llc[8] == '8-11'
    assert llc[7] is None   # offline: no cache directory
    assert len(reads) == 4  # once per domain (0-3, 4-6, 8-11, 12-15); offline CPUs are not read
    assert facts['model'] == 'Fake CPU @ 2.00GHz'


def test_llc_missing_is_none(tmp_path):
    host = FakeHost(tmp_path / 'vm').build(llc_cores=0)
    facts = _facts.cpu_facts(HostIO(host.root))
    assert set(c['llc'] for c in facts['list']) == {None}


def test_llc_default_is_one_domain_per_socket(host):
    facts = _facts.cpu_facts(HostIO(host.root))
    assert [c['llc'] for c in facts['list']] == ['0-3'] * 4 + ['4-7'] * 4
