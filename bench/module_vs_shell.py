#!/usr/bin/env python3
"""Benchmark: each module against ansible.builtin.shell doing the same raw sysfs
writes, on the same QEMU guest, through the same ad-hoc `ansible` call.

Both pay Ansible's controller start-up and AnsiballZ module start-up, so the
ratio shows what the collection's validation, planning, bookkeeping and
read-back cost. Target (issue 3): ratio <= 1.05.

Needs a running fleet (tools/fleet/fleet up --count 1). Each round does a
change and its undo, alternating module and shell so drift hits both alike.

    PARKER_FLEET_DIR=.fleet .venv/bin/python bench/module_vs_shell.py [--rounds N] [--host guest1]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'fleet'))
import harness  # noqa: E402

SCRATCH = '0000:00:03.0'
CASES = {
    'cpu_offline': (
        [('parker.kernel.cpu_offline', 'cpus=2-3 state=offline'),
         ('parker.kernel.cpu_offline', 'cpus=2-3 state=online')],
        [('ansible.builtin.shell', 'for c in 2 3; do echo 0 > /sys/devices/system/cpu/cpu$c/online; done'),
         ('ansible.builtin.shell', 'for c in 2 3; do echo 1 > /sys/devices/system/cpu/cpu$c/online; done')]),
    'mem_reserve': (
        [('parker.kernel.mem_reserve', 'blocks=34-35 state=offline'),
         ('parker.kernel.mem_reserve', 'blocks=34-35 state=online')],
        [('ansible.builtin.shell',
          'for b in 34 35; do echo offline > /sys/devices/system/memory/memory$b/state; done'),
         ('ansible.builtin.shell',
          'for b in 34 35; do echo online_movable > /sys/devices/system/memory/memory$b/state; done')]),
    'device_detach': (
        [('parker.kernel.device_detach', 'devices=%s state=detached' % SCRATCH),
         ('parker.kernel.device_detach', 'devices=%s state=attached' % SCRATCH)],
        [('ansible.builtin.shell',
          'd=%s; echo $d > /sys/bus/pci/devices/$d/driver/unbind; echo none > /sys/bus/pci/devices/$d/driver_override'
          % SCRATCH),
         ('ansible.builtin.shell',
          'd=%s; echo > /sys/bus/pci/devices/$d/driver_override; echo $d > /sys/bus/pci/drivers/virtio-pci/bind'
          % SCRATCH)]),
}


def adhoc(host, module, args):
    command = os.path.join(REPO, '.venv', 'bin', 'ansible')
    argv = [command, '-i', os.path.join(harness.STATE_DIR, 'inventory.yml'), host, '-m', module, '-a', args]
    started = time.perf_counter()
    proc = subprocess.run(argv, env=harness.ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or 'CHANGED' not in proc.stdout:
        raise SystemExit('%s %s did not change the host:\n%s' % (module, args, proc.stdout[-2000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--host', default='guest1')
    parser.add_argument('--case', action='append', choices=sorted(CASES))
    args = parser.parse_args()
    print('| case | module median (s) | shell median (s) | ratio |')
    print('|---|---|---|---|')
    for name in args.case or sorted(CASES):
        module_steps, shell_steps = CASES[name]
        module_times, shell_times = [], []
        for round_no in range(args.rounds):
            order = [(module_steps, module_times), (shell_steps, shell_times)]
            if round_no % 2:
                order.reverse()
            for steps, times in order:
                times.append(sum(adhoc(args.host, module, margs) for module, margs in steps))
        module_median, shell_median = statistics.median(module_times), statistics.median(shell_times)
        print('| %s (change + undo) | %.2f | %.2f | %.3f |' % (name, module_median, shell_median,
                                                             module_median / shell_median))
        sys.stdout.flush()


if __name__ == '__main__':
    main()
