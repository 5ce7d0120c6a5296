"""parker.kernel.host_partitions through its main(), against the Parker emulation's model as the kernel."""
import json
import os

import pytest

from parker_kernel import ParkerHost, ROOT, run_module
from unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.modules import host_partitions

KERNEL = '/boot/vmlinuz-6.1.0-fake-amd64'
P1 = {'name': 'p1', 'cpus': '2-3', 'memory': '1G', 'devices': ['block=vdb'],
      'network': {'address': '10.77.0.11/24', 'gateway': '10.77.0.1', 'hostname': 'p1'}}
P2 = {'name': 'p2', 'cpus': '4-5', 'memory': '1G', 'devices': ['net=eth1'],
      'network': {'address': '10.77.0.12/24', 'gateway': '10.77.0.1', 'hostname': 'p2'}}


@pytest.fixture
def parker(host, sim, monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    host.write('/usr/bin/ping', '#!fake')
    return ParkerHost(host, monkeypatch)


@pytest.fixture
def call(parker, monkeypatch):
    def run(partitions=(P1, P2), check=False, diff=False, ping=(0, '', ''), **args):
        args = dict(dict(partitions=[dict(p) for p in partitions], kernel=KERNEL, health_timeout=2,
                         parker_root=ROOT), **args)
        commands = parker.commands({('/usr/bin/ping',): ping})
        return run_module(monkeypatch, host_partitions, args, parker.host.root, check_mode=check, diff=diff,
                          commands=commands)
    return run


def test_one_call_builds_starts_and_probes_every_partition(parker, call):
    result = call()
    assert not result.get('failed'), result
    assert result['changed'] and [p['action'] for p in result['partitions']] == ['create', 'create']
    assert all(p['online'] and p['healthy'] for p in result['partitions']), result['partitions']
    view = parker.view()
    assert view['online'] == '0-1,6-7' and 'vdb' not in view['block'] and 'eth1' not in view['net']
    assert view['kexec_loaded'] == '0' and all(p['online'] for p in view['partitions'].values())
    # Each kernel was loaded inside its own partition's memory, with its own control page and address.
    for argv, name in zip(parker.kexec_loads, ('p1', 'p2')):
        info = parker.model.info(name)
        base, size = info['memory']
        assert '--mem-min=0x%x' % base in argv and '--mem-max=0x%x' % (base + size - 1) in argv
        line = [a for a in argv if a.startswith('--command-line=')][0]
        assert 'parker=0x%x' % info['control'] in line and 'ip=10.77.0.1' in line
    assert result['status'] == 'in plan' and result['repaired']


def test_a_second_run_changes_nothing_and_writes_nothing(parker, call):
    call()
    before = snapshot(parker.host.root)
    again = call()
    assert again['changed'] is False and again['actions'] == [], again
    assert again['status'] == 'in plan' and again['drift'] == []
    assert snapshot(parker.host.root) == before


def test_check_mode_returns_the_plan_and_writes_nothing(parker, call):
    before = snapshot(parker.host.root)
    result = call(check=True, diff=True)
    assert not result.get('failed'), result
    assert snapshot(parker.host.root) == before
    assert 'mkdir %s/p1' % ROOT in result['actions'] and 'write %s/p2/bind <- 0000:00:06.0' % ROOT in result['actions']
    assert result['status'] == 'drifted' and [d['kind'] for d in result['drift']] == ['missing', 'missing']
    assert 'p1: cpus=2-3 memory=1G@0x0 devices=0000:00:03.0(virtio-pci) online=unknown' in result['diff']['after']
    assert 'boot kernel: cpus online 0-1,6-7' in result['diff']['after']
