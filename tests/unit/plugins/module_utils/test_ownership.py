"""What holds a device: every in-use reason is reported by the facts and refused, with zero writes,
by every module that takes a device (device_detach, partition)."""
import os

import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO
from ansible_collections.parker.kernel.plugins.module_utils._pci import run_device_detach
from ansible_collections.parker.kernel.plugins.module_utils import _ownership

DISK, NIC = '0000:00:03.0', '0000:00:06.0'


@pytest.fixture(autouse=True)
def ssh_env(monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')


def in_use(host, bdf):
    pci = _ownership.pci_facts(HostIO(host.root, environ=dict(os.environ)))
    return next(d for d in pci['devices'] if d['address'] == bdf)['in_use']


def test_an_idle_disk_and_nic_are_free(host):
    assert in_use(host, DISK) == [] and in_use(host, NIC) == []


def test_a_mounted_partition_is_named(host):
    host.mount(host.partition('vdb', 1), '/mnt/data')
    assert in_use(host, DISK) == ['/dev/vdb1 is mounted at /mnt/data']


def test_active_swap(host):
    host.swap(host.partition('vdb', 2))
    assert in_use(host, DISK) == ['/dev/vdb2 is active swap']


def test_an_lvm_volume_above_a_partition_and_where_it_is_mounted(host):
    part = host.partition('vdb', 1)
    host.holder(part, 'dm-0', dm_name='vg0-data', dm_uuid='LVM-abcdef')
    host.mount('dm-0', '/srv')
    assert in_use(host, DISK) == ['/dev/vdb1 is held by LVM volume vg0-data, where /dev/dm-0 is mounted at /srv']


def test_an_md_member_and_a_dm_crypt_volume(host):
    host.holder('vdb', 'md0', md_level='raid1', md_state='clean')
    assert in_use(host, DISK) == ['/dev/vdb is held by MD array md0 (raid1, clean)']
    host.holder('md0', 'dm-1', dm_name='secret', dm_uuid='CRYPT-LUKS2-xyz')
    assert 'held by dm-crypt volume secret' in in_use(host, DISK)[0]


def test_a_disk_a_process_holds_open(host):
    host.open_by(4242, 'postgres', 'vdb')
    assert in_use(host, DISK) == ['/dev/vdb is open by pid 4242 (postgres)']


def test_a_nic_up_with_an_address_and_a_route(host):
    host.address('eth1', '10.77.0.1', 24)
    host.address('eth1', 'fe80::1', 64, scope=_ownership.SCOPE_LINK)
    host.write('/proc/net/route', host.read('/proc/net/route') + '\neth1\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF')
    assert in_use(host, NIC) == ['eth1 is up with address 10.77.0.1/24', 'eth1 carries routes to 10.77.0.0/24']


def test_a_link_local_address_alone_is_not_use(host):
    host.address('eth1', 'fe80::1', 64, scope=_ownership.SCOPE_LINK)
    assert in_use(host, NIC) == []


def test_a_bond_member_and_the_bond_stacked_on_it(host):
    os.makedirs(host.path('/sys/devices/virtual/net/bond0'))
    host.symlink('/sys/devices/virtual/net/bond0', '/sys/class/net/bond0')
    host.write('/sys/devices/virtual/net/bond0/ifindex', '40')
    host.write('/sys/devices/virtual/net/bond0/flags', '0x1403')
    host.symlink('/sys/devices/virtual/net/bond0', '/sys/class/net/eth1/master')
    host.address('bond0', '192.0.2.5', 24)
    assert in_use(host, NIC) == ['eth1 is enslaved to bond0', 'bond0 (stacked on eth1) is up with address 192.0.2.5/24']


def test_device_detach_refuses_a_mounted_disk_naming_the_mount_and_writes_nothing(host, run):
    host.mount(host.partition('vdb', 1), '/mnt/data')
    before = snapshot(host.root)
    result = run(run_device_detach, dict(devices=['block=vdb'], state='detached', driver_override='none',
                                         force=False, parker_root='/sys/fs/parker'))
    assert result['failed'] and result['writes'] == 0
    assert '0000:00:03.0 (vdb): /dev/vdb1 is mounted at /mnt/data' in result['msg']
    assert snapshot(host.root) == before


def test_force_overrides_the_in_use_guard(host, run):
    host.address('eth1', '10.77.0.1', 24)
    result = run(run_device_detach, dict(devices=['net=eth1'], state='detached', driver_override='none',
                                         force=True, parker_root='/sys/fs/parker'))
    assert result['changed'] and not result.get('failed')


def test_takeover_problems_lists_lockout_flags_then_users():
    dev = {'address': DISK, 'net': [], 'block': ['vdb'], 'class': '0x010000', 'ssh': False,
           'default_route': False, 'root_fs': True, 'in_use': ['/dev/vdb1 is mounted at /']}
    problems = _ownership.takeover_problems(dev, force=False)
    assert problems[0].startswith('0000:00:03.0 (vdb) holds the root filesystem')
    assert problems[1].startswith('0000:00:03.0 (vdb): /dev/vdb1 is mounted at /;')
    assert _ownership.takeover_problems(dev, force=True) == []


def test_many_bind_mounts_of_one_device_are_named_briefly_and_unescaped(host):
    part = host.partition('vdb', 1)
    for point in ('/var/lib/kubelet/a', '/var/lib/kubelet/b', '/srv/with\\040space', '/x', '/y'):
        host.mount(part, point)
    assert in_use(host, DISK) == ['/dev/vdb1 is mounted at /srv/with space, /var/lib/kubelet/a, '
                                  '/var/lib/kubelet/b and 2 more']


def test_unreadable_addresses_make_an_up_nic_in_use(host, monkeypatch):
    # Fail closed: without rtnetlink an up NIC may carry an address no /proc file shows.
    monkeypatch.setattr(HostIO, 'interface_addresses', lambda self: None)
    assert in_use(host, NIC) == ['eth1 is up and its addresses could not be read (rtnetlink failed)']


def test_block_and_character_numbers_do_not_collide(host, monkeypatch):
    # dm's block major 253 is also a dynamic char major: an open char 253:0 is not /dev/vdb's holder.
    majmin = host.read('/sys/class/block/vdb/dev')
    monkeypatch.setattr(HostIO, 'open_device_files', lambda self: iter([(7, 'ptp4l', 'c:' + majmin)]))
    assert in_use(host, DISK) == []
    monkeypatch.setattr(HostIO, 'open_device_files', lambda self: iter([(7, 'dd', 'b:' + majmin)]))
    assert in_use(host, DISK) == ['/dev/vdb is open by pid 7 (dd)']
