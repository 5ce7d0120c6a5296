import os

import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils._pci import run_device_detach


def params(**kw):
    base = dict(devices=None, state='detached', driver_override='none', force=False, parker_root='/sys/fs/parker')
    base.update(kw)
    return base


def driver(host, bdf):
    link = host.path('/sys/bus/pci/devices/%s/driver' % bdf)
    return os.path.basename(os.readlink(link)) if os.path.lexists(link) else None


def override(host, bdf):
    return host.read('/sys/bus/pci/devices/%s/driver_override' % bdf)


@pytest.fixture(autouse=True)
def ssh_env(monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')


def test_detach_then_attach_restores_original_driver(host, run):
    result = run(run_device_detach, params(devices=['0000:00:03.0']))
    assert result['changed'] and driver(host, '0000:00:03.0') is None
    assert override(host, '0000:00:03.0') == 'none'
    assert run(run_device_detach, params(devices=['00:03.0']))['changed'] is False
    # The kernel drops the disk's block device with its driver; the selector still resolves.
    import shutil
    shutil.rmtree(host.path('/sys/devices/pci0000:00/0000:00:03.0/virtio2'))
    os.remove(host.path('/sys/block/vdb'))
    back = run(run_device_detach, params(devices=['block=vdb'], state='attached'))
    assert back['changed'] and driver(host, '0000:00:03.0') == 'virtio-pci'
    assert override(host, '0000:00:03.0') == '(null)'
    assert run(run_device_detach, params(devices=['0000:00:03.0'], state='attached'))['changed'] is False


def test_detach_to_pci_stub_by_selector(host, run):
    host.write('/sys/bus/pci/drivers/pci-stub/bind', '')
    result = run(run_device_detach, params(devices=['net=eth1'], driver_override='pci-stub'))
    assert result['devices'] == ['0000:00:06.0']
    assert driver(host, '0000:00:06.0') == 'pci-stub' and override(host, '0000:00:06.0') == 'pci-stub'
    assert result['original_drivers'] == {'0000:00:06.0': 'virtio-pci'}


def test_check_mode_writes_nothing(host, run):
    before = snapshot(host.root)
    result = run(run_device_detach, params(devices=['0000:00:03.0', '0000:00:04.0']), check_mode=True)
    assert result['changed'] and len(result['changed_devices']) == 2
    assert snapshot(host.root) == before


@pytest.mark.parametrize('devices,fragment', [
    (['0000:00:05.0'], 'SSH connection'),
    (['net=eth0'], 'default route'),
    (['0000:00:02.0'], 'root filesystem'),
    (['0000:00:3.0'], 'malformed'),
    (['../../../etc/passwd'], 'looks like a path'),
    (['0000:00:1f.0'], 'matches no PCI device'),
    (['class=0x0100'], 'root filesystem'),
])
def test_refusals_write_nothing(host, run, devices, fragment):
    before = snapshot(host.root)
    result = run(run_device_detach, params(devices=devices))
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert snapshot(host.root) == before


def test_iommu_group_must_be_whole(host, run):
    # Put 03.0 and 04.0 in one group.
    host.symlink('/sys/kernel/iommu_groups/2', '/sys/devices/pci0000:00/0000:00:04.0/iommu_group')
    result = run(run_device_detach, params(devices=['0000:00:03.0']))
    assert result['failed'] and 'IOMMU group 2' in result['msg']
    assert run(run_device_detach, params(devices=['0000:00:03.0', '0000:00:04.0']))['changed']


def test_parker_claimed_device_is_never_touched(host, run):
    # A real kernel leaves the claimed device's driver link naming its host driver (virtio-pci here).
    host.parker_kernel()
    os.makedirs(host.path('/sys/fs/parker/p1/devices/0000:00:03.0'))
    before = snapshot(host.root)
    for state in ('detached', 'attached'):
        result = run(run_device_detach, params(devices=['0000:00:03.0'], state=state, force=True))
        assert result['failed'] and 'Parker partition' in result['msg']
    assert snapshot(host.root) == before


def test_missing_driver_is_refused_before_writes(host, run):
    before = snapshot(host.root)
    result = run(run_device_detach, params(devices=['0000:00:03.0'], driver_override='vfio-pci'),
                 commands={('modprobe', '-n'): (1, '', 'FATAL: Module vfio-pci not found')})
    assert result['failed'] and 'vfio-pci' in result['msg']
    assert snapshot(host.root) == before


def test_failure_part_way_rolls_back(host, run, fail_write):
    import errno
    fail_write('0000:00:04.0/driver/unbind', None, errno.ENODEV)
    result = run(run_device_detach, params(devices=['0000:00:03.0', '0000:00:04.0']))
    assert result['failed'] and result['errno_name'] == 'ENODEV'
    assert driver(host, '0000:00:03.0') == 'virtio-pci' and override(host, '0000:00:03.0') == '(null)'


def test_nic_detach_needs_force_when_the_ssh_interface_is_unknown(host, run, monkeypatch):
    monkeypatch.delenv('SSH_CONNECTION')
    result = run(run_device_detach, params(devices=['net=eth1']))
    assert result['failed'] and 'could not be determined' in result['msg']
    assert run(run_device_detach, params(devices=['net=eth1'], force=True))['changed']


def test_a_probe_that_binds_nothing_rolls_back_cleanly(host, sim, run, fail_write, monkeypatch):
    # vfio-pci without an IOMMU: drivers_probe returns but nothing binds, and the undo's unbind says ENODEV.
    import errno
    host.write('/sys/bus/pci/drivers/vfio-pci/bind', '')
    real = sim.after_write
    monkeypatch.setattr(sim, 'after_write', lambda rel, value: None if rel.endswith('drivers_probe') else real(rel, value))
    fail_write('/drivers/vfio-pci/unbind', None, errno.ENODEV)
    result = run(run_device_detach, params(devices=['0000:00:03.0'], driver_override='vfio-pci'),
                 commands={('modprobe',): (0, '', '')})
    assert result['failed'] and 'did not reach the requested driver' in result['msg']
    assert result['rollback_failures'] == []
    assert driver(host, '0000:00:03.0') == 'virtio-pci' and override(host, '0000:00:03.0') == '(null)'


def test_a_device_recorded_as_bound_counts_as_claimed_while_the_kernfs_is_unmounted(host, run):
    """Partitions outlive an umount unseen: the partition module's records of this boot stand in."""
    host.parker_kernel(mounted=False)
    host.write('/run/parker-kernel/partitions.json', '{"p1": {"cpus": "6-7", "devices": ["0000:00:03.0"]}}')
    before = snapshot(host.root)
    result = run(run_device_detach, params(devices=['0000:00:03.0'], force=True))
    assert result['failed'] and 'Parker partition' in result['msg']
    assert snapshot(host.root) == before
