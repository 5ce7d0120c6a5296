"""The cmdline role on a guest that boots through its own GRUB from disk.

Only a disk boot proves that a persisted command line is what the kernel
really boots with, so this test starts its own GRUB-booting guest.
"""
import os
import subprocess

import pytest

import harness

DISK_STATE = os.environ.get('PARKER_DISK_FLEET_DIR', os.path.join(harness.REPO, '.fleet-disk'))


@pytest.fixture(scope='module')
def disk_fleet(fleet):
    fleet_cli = os.path.join(harness.REPO, 'tools', 'fleet', 'fleet')
    up = subprocess.run([fleet_cli, 'up', '--count', '1', '--boot', 'disk', '--state-dir', DISK_STATE,
                         '--port-base', os.environ.get('PARKER_DISK_FLEET_PORT_BASE', '2260')],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    try:
        assert up.returncode == 0, 'disk-boot guest did not come up:\n' + up.stdout[-6000:]
        yield DISK_STATE
    finally:
        subprocess.run([fleet_cli, 'down', '--state-dir', DISK_STATE], check=False)


def test_cmdline_role_cold_and_kexec_reboots(disk_fleet):
    rc, output, seconds = harness.run_playbook('cmdline.yml', state_dir=disk_fleet)
    assert rc == 0, 'cmdline.yml failed (rc=%d, %.0fs):\n%s' % (rc, seconds, output[-8000:])
