"""Every module against real Debian kernels in the QEMU fleet.

Each playbook asserts on the kernel's own view (sysfs, /proc, lscpu) after the
module ran; a failed assertion fails the playbook and this test. Order matters
only in that each playbook leaves the guests as it found them.
"""
import pytest

from harness import run_playbook

PLAYBOOKS = ['facts.yml', 'check_mode.yml', 'refusals.yml', 'in_use.yml', 'faults.yml', 'cpu.yml', 'memory.yml',
             'devices.yml', 'kexec.yml']
# Playbooks that prove a behaviour on the first guest alone: every guest runs the same kernel, and three TCG
# guests on two cores make each run about half again as long. facts.yml runs on all of them.
ONE_GUEST = tuple(p for p in PLAYBOOKS if p != 'facts.yml')


@pytest.mark.parametrize('playbook', PLAYBOOKS)
def test_playbook(fleet, playbook):
    rc, output, seconds = run_playbook(playbook)
    assert rc == 0, '%s failed on the fleet (rc=%d, %.0fs):\n%s' % (playbook, rc, seconds, output[-6000:])
    # Every host in the fleet ran it, none was skipped or unreachable.
    recap = output[output.rfind('PLAY RECAP'):]
    hosts = [g['name'] for g in fleet['guests']][:1 if playbook in ONE_GUEST else None]
    for host in hosts:
        assert host in recap, 'host %s missing from the recap:\n%s' % (host, recap)
    assert 'unreachable=0' in recap and 'failed=1' not in recap
