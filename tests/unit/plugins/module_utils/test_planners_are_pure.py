"""Every planner is a function of facts and a request: run against facts read once and then frozen, with every
way to reach the host disabled, each one still returns its plan (docs/architecture.md: facts -> plan -> apply)."""
import builtins
import copy
import io as pyio
import os
import socket
import subprocess

import pytest

from ansible_collections.parker.kernel.tests.unit.parker_kernel import ParkerHost, ROOT
from ansible_collections.parker.kernel.plugins.module_utils import _bootloader, _cpu, _drift, _facts, _hostio, \
    _kexec, _memory, _parker, _partition, _partition_plan, _partition_start, _pci, _state


class HostTouched(AssertionError):
    pass


@pytest.fixture
def no_io(monkeypatch):
    """Inside the returned context manager any file, directory, process or socket access fails the test."""
    import contextlib

    def refuse(*args, **kwargs):
        raise HostTouched('a planner touched the host: %r' % (args[:2],))

    @contextlib.contextmanager
    def guard():
        with monkeypatch.context() as patch:
            for owner, names in ((builtins, ('open',)), (pyio, ('open',)),
                                 (os, ('open', 'listdir', 'stat', 'lstat', 'readlink', 'scandir', 'access', 'mkdir',
                                       'rmdir', 'remove', 'rename', 'walk')),
                                 (os.path, ('exists', 'isdir', 'isfile', 'realpath', 'islink', 'lexists')),
                                 (subprocess, ('Popen', 'run')), (socket, ('socket', 'create_connection'))):
                for name in names:
                    patch.setattr(owner, name, refuse)
            yield
    return guard


@pytest.fixture
def facts(host, sim, monkeypatch):
    """The facts the partition engine plans with, read from a Parker host with p1 built and started."""
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    ParkerHost(host, monkeypatch)
    io = _hostio.HostIO(host.root)
    request = request_for([{'name': 'p1', 'cpus': '2-3', 'memory': '1G', 'devices': ['block=vdb'],
                            'kernel': '/boot/vmlinuz-6.1.0-fake-amd64'}])
    parker = _parker.parker_facts(io, ROOT)
    gathered = _partition.gather_host(io, lambda argv: (0, '', ''), request, parker)
    gathered['boot'] = _memory.boot_facts(io)
    gathered['slot'] = _kexec.slot_facts(io, 'normal', ('/boot/vmlinuz-6.1.0-fake-amd64',))
    gathered['request'] = request
    return copy.deepcopy(gathered)


def request_for(partitions, **kw):
    request = dict(state='started', partitions=partitions, exclusive=True, replace=False, force=False,
                   allow_smt_split=False, min_housekeeping_cores=1, memory_retries=3, start_timeout=60,
                   poweroff_timeout=0, mount_kernfs=True, parker_root=ROOT, boot_tokens=['crashkernel=128M'],
                   hardware=None, accept_hardware=False, record_hardware=True, health_check=True, health_timeout=5)
    request.update(kw)
    return request


def test_every_planner_runs_on_frozen_facts_without_touching_the_host(facts, no_io):
    request = facts['request']
    with no_io():
        plan = _partition_plan.plan_host(facts, request)
        assert plan['problems'] == [] and [p['action'] for p in plan['partitions']] == ['create']
        assert [s['op'] for s in plan['partitions'][0]['steps']][-4:] == ['mkdir', 'write', 'write', 'write']
        refused = _partition_plan.plan_host(
            facts, dict(request, partitions=[dict(request['partitions'][0], cpus='0-7')]))
        assert refused['problems']
        absent = _partition_plan.plan_host(facts, dict(request, state='absent'))
        assert [p['action'] for p in absent['partitions']] == ['absent']
        spec, _problems = _partition_plan.parse_spec(request['partitions'][0], 'started', facts['cpus'],
                                                     facts['pci'], {}, {})
        assert _partition_start.check(dict(spec), facts)[1] == []
        targets, changing, _after, steps = _cpu.plan_cpu_offline(
            facts['cpus'], set(), dict(cpus='4-5', state='offline', force=False, allow_smt_split=False,
                                       min_housekeeping_cores=1), facts['topology'])
        assert changing == {4, 5} and steps[0]['path'] == _state.CPU_TOPOLOGY
        by_id = dict((b['id'], b) for b in facts['memory']['blocks'])
        blocks, _how = _memory.select_blocks(dict(size='256M', node=1, name='r', state='offline'), facts['memory'], {})
        assert len(_memory.block_steps(blocks, by_id, 'offline')) == 2
        assert _memory.boot_plan(dict(parker_cma='4G', crashkernel='128M'), facts['boot'])['tokens']
        bdfs, changes = _pci.plan_devices(dict(devices=['0000:00:06.0'], state='detached', driver_override='none',
                                               force=False), facts['pci'], set(), {})
        assert bdfs == ['0000:00:06.0'] and _pci.change_steps(changes[0])
        assert _kexec.plan_load('/boot/vmlinuz-6.1.0-fake-amd64', None, 'normal', 'auto', '0x0', '0x1000',
                                facts['slot'])[0] == 'legacy'
        assert _bootloader.plan_tokens(dict(present=['quiet'], absent=[]))
        summary = _drift.hardware_summary(facts['cpus'], facts['memory'], facts['pci'])
        assert _drift.hardware_changes(summary, summary) == []
        assert _facts.smt_groups(facts['cpus']['list'])
