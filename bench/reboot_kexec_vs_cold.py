#!/usr/bin/env python3
"""Benchmark: kexec reboot against cold reboot of the same GRUB-booting guest.

Starts one disk-boot guest in its own state dir, runs bench/reboot.yml
(alternating cold and `systemctl kexec` reboots, each timed by
ansible.builtin.reboot's `elapsed`), stops the guest, prints the medians and
the kexec/cold ratio.

    .venv/bin/python bench/reboot_kexec_vs_cold.py [--rounds N]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'fleet'))
import harness  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--state-dir', default=os.path.join(REPO, '.fleet-bench'))
    parser.add_argument('--port-base', default='2280')
    args = parser.parse_args()
    fleet = os.path.join(REPO, 'tools', 'fleet', 'fleet')
    subprocess.run([fleet, 'up', '--count', '1', '--boot', 'disk', '--state-dir', args.state_dir,
                    '--port-base', args.port_base], check=True)
    try:
        playbook = os.path.join(REPO, 'bench', 'reboot.yml')
        proc = subprocess.run([os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i',
                               os.path.join(args.state_dir, 'inventory.yml'), playbook,
                               '-e', 'bench_rounds=%d' % args.rounds],
                              env=harness.ansible_env(args.state_dir), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    finally:
        subprocess.run([fleet, 'down', '--state-dir', args.state_dir], check=False)
    match = re.search(r'cold=\[([^\]]*)\] kexec=\[([^\]]*)\]', proc.stdout)
    if proc.returncode != 0 or not match:
        raise SystemExit(proc.stdout[-4000:])
    cold = [float(x) for x in match.group(1).split(',')]
    kexec = [float(x) for x in match.group(2).split(',')]
    print('cold reboots (s): %s' % cold)
    print('kexec reboots (s): %s' % kexec)
    print('median cold %.1f s, median kexec %.1f s, kexec/cold ratio %.2f' % (
        statistics.median(cold), statistics.median(kexec), statistics.median(kexec) / statistics.median(cold)))


if __name__ == '__main__':
    main()
