"""Unit tests of the emulated Application Kernel (tests/parker_emu/instance.py, kexec_recorder.py).

What the partition BSP would boot is judged from the kexec-tools command line the
recorder saw: these tests pin the checks a real boot would fail on, and that an
instance that cannot boot never reports online.
"""
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from parker_emu import instance  # noqa: E402  pylint: disable=wrong-import-position
from parker_emu import kexec_recorder  # noqa: E402  pylint: disable=wrong-import-position
from parker_emu.model import FakeBackend  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.parker.kernel.tests.unit.unit_helpers import import_parkerfs  # noqa: E402  pylint: disable=wrong-import-position

CONTROL = 0x1417d9000
BASE, SIZE = 0x110000000, 128 << 20


def load_argv(cmdline, mem_min='0x110000000', mem_max='0x117ffffff', crash=False):
    argv = ['-p' if crash else '-l', '-c', '--initrd=/boot/initrd.img', '--command-line=%s' % cmdline]
    if mem_min:
        argv.append('--mem-min=%s' % mem_min)
    if mem_max:
        argv.append('--mem-max=%s' % mem_max)
    return argv + ['/boot/vmlinuz']


GOOD = 'parker=0x1417d9000 memmap=exactmap memmap=128M@0x110000000 console=ttyS1 ip=10.77.0.11::10.77.0.1:255.255.255.0::eth0:off'


def test_recorder_parses_what_the_collection_runs():
    action, slot = instance.parse_kexec_argv(load_argv(GOOD))
    assert action == 'load'
    assert slot == {'initrd': '/boot/initrd.img', 'cmdline': GOOD, 'mem_min': '0x110000000',
                    'mem_max': '0x117ffffff', 'kernel': '/boot/vmlinuz'}
    assert instance.parse_kexec_argv(['-l', '--append', 'a b', '/k'])[1]['cmdline'] == 'a b'
    assert instance.parse_kexec_argv(['-u']) == ('unload', None)
    assert instance.parse_kexec_argv(load_argv(GOOD, crash=True)) == (None, None)
    assert instance.parse_kexec_argv(['-p', '-u']) == (None, None)


def test_good_image_boots_and_gets_its_address():
    problems, tokens = instance.check_boot(instance.parse_kexec_argv(load_argv(GOOD))[1], CONTROL, (BASE, SIZE))
    assert problems == []
    plan = instance.network_plan(tokens, ['0000:00:08.0', '0000:00:07.0'])
    assert plan['names'] == {'0000:00:07.0': 'eth0', '0000:00:08.0': 'eth1'}
    assert plan['ip'] == {'address': '10.77.0.11', 'prefix': 24, 'gateway': '10.77.0.1', 'hostname': None,
                          'device': 'eth0'}


@pytest.mark.parametrize('cmdline, mem_min, mem_max, expected', [
    (GOOD.replace('parker=0x1417d9000', 'parker=0x1417da000'), '0x110000000', '0x117ffffff', 'not this partition'),
    (GOOD.replace('parker=0x1417d9000 ', ''), '0x110000000', '0x117ffffff', '0 parker= tokens'),
    (GOOD.replace('memmap=exactmap ', ''), '0x110000000', '0x117ffffff', 'no memmap=exactmap'),
    (GOOD.replace('128M@', '256M@'), '0x110000000', '0x117ffffff', 'not the partition\'s memory'),
    (GOOD + ' memmap=1G@0x0', '0x110000000', '0x117ffffff', 'not the partition\'s memory'),
    (GOOD, '0x100000000', '0x117ffffff', 'outside the partition'),
    (GOOD, '0x110000000', '0x118000000', 'outside the partition'),
    (GOOD, None, None, 'without --mem-min'),
])
def test_images_that_would_not_boot(cmdline, mem_min, mem_max, expected):
    slot = instance.parse_kexec_argv(load_argv(cmdline, mem_min, mem_max))[1]
    problems, _tokens = instance.check_boot(slot, CONTROL, (BASE, SIZE))
    assert any(expected in p for p in problems), problems


def test_nothing_known_in_the_slot_or_no_memory():
    assert 'no image' in instance.check_boot(None, CONTROL, (BASE, SIZE))[0][0]
    slot = instance.parse_kexec_argv(load_argv(GOOD))[1]
    assert any('no memory' in p for p in instance.check_boot(slot, CONTROL, None)[0])


def test_ip_forms():
    assert instance.parse_ip('dhcp') is None
    assert instance.parse_ip('10.0.0.2::10.0.0.1:255.255.0.0:app:eth1:none')['prefix'] == 16
    assert instance.parse_ip('10.0.0.2:::::eth0:dhcp') is None
    plan = instance.network_plan(['ip=10.0.0.2::::x:eth3:off'], ['0000:00:07.0'])
    assert plan['ip']['missing']  # the kernel boots on without the address


def test_recorder_records_only_successful_normal_loads(tmp_path, monkeypatch):
    record = tmp_path / 'slot.json'
    fake_kexec = tmp_path / 'kexec.distrib'
    fake_kexec.write_text('#!/bin/sh\n[ "$1" != --fail ]\n')
    fake_kexec.chmod(0o755)
    monkeypatch.setattr(kexec_recorder, 'REAL_KEXEC', str(fake_kexec))
    monkeypatch.setattr(kexec_recorder, 'RECORD', str(record))
    assert kexec_recorder.main(load_argv(GOOD)) == 0
    assert json.loads(record.read_text())['cmdline'] == GOOD
    assert kexec_recorder.main(['--fail', '-u']) != 0
    assert record.exists()
    assert kexec_recorder.main(['-u']) == 0
    assert not record.exists()


class FakeInstanceHost(instance.InstanceHost):
    def __init__(self, slot):
        super().__init__(record=None)
        self._slot = slot
        self.calls = []

    def slot(self):
        return self._slot

    def nics(self, devices):
        return list(devices)

    def network_up(self, name, plan):
        self.calls.append(('up', name, plan['ip']['address'] if plan['ip'] else None))

    def network_down(self, name, nics):
        self.calls.append(('down', name, nics))


def simulated(monkeypatch, slot):
    parkerfs = import_parkerfs(monkeypatch)
    host = FakeInstanceHost(slot)
    model = parkerfs.make_model(FakeBackend(areas={0: [(BASE, 1 << 30)]}), delay=0, online_cap=1.5, host=host)
    model.mkdir('p1')
    model.write_cpus('p1', '2')
    model.write_memory('p1', '128M')
    model.bind('p1', '0000:00:05.0')
    return model, host


def test_simulator_boots_a_good_image_and_stops_its_network(monkeypatch):
    slot = instance.parse_kexec_argv(load_argv(GOOD))[1]
    model, host = simulated(monkeypatch, slot)
    model.start('p1')
    assert model.info('p1')['online']
    assert host.calls == [('up', 'p1', '10.77.0.11')]
    model.simulator.shutdown('p1')
    assert not model.info('p1')['online'] and host.calls[-1] == ('down', 'p1', ['0000:00:05.0'])


def test_simulator_never_boots_a_misplaced_image(monkeypatch):
    slot = instance.parse_kexec_argv(load_argv(GOOD, mem_min=None, mem_max=None))[1]
    model, host = simulated(monkeypatch, slot)
    started = time.time()
    with pytest.raises(OSError) as exc:
        model.start('p1')
    assert exc.value.errno == 110 and time.time() - started >= 1.4
    assert 'without --mem-min' in model.simulator.errors['p1'] and host.calls == []


def test_a_failed_network_setup_still_comes_online(monkeypatch):
    slot = instance.parse_kexec_argv(load_argv(GOOD))[1]
    model, host = simulated(monkeypatch, slot)

    def broken(name, plan):
        raise OSError('no network interface appeared for 0000:00:05.0')
    host.network_up = broken
    model.start('p1')
    assert model.info('p1')['online'] and 'network setup failed' in model.simulator.errors['p1']
