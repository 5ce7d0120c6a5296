#!/usr/bin/env python3
"""Benchmark (issue 11): what a site.yml run costs against one ping round, on the QEMU fleet.

One round is: `ansible all -m ansible.builtin.ping`, then playbooks/site.yml bringing two partitions up
on every guest (with the Parker emulation's kernfs), a second, idempotent site.yml (changed=0 is
checked), and playbooks/teardown.yml. Each time is the whole ansible-playbook command, as an operator
sees it. Targets: the idempotent rerun at most 3 ping rounds; the first bring-up and the teardown no
slower than before the one-call host module (83 s and, for teardown, the first bring-up's scale).

Needs a running fleet with the emulation deployed:
    tools/fleet/fleet up --count 3
    ANSIBLE_CONFIG=.fleet/ansible.cfg .venv/bin/ansible-playbook -i .fleet/inventory.yml tests/parker_emu/deploy.yml
    PARKER_FLEET_DIR=.fleet .venv/bin/python bench/host_round_trips.py [--rounds N] [--checkout DIR]

--checkout runs another checkout's collection and playbooks (e.g. a `git worktree` of the commit before
the one-call host module) on the same fleet, so both are measured on the same machine in the same state.
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'fleet'))
import harness  # noqa: E402

VARS = os.path.join('playbooks', 'vars', 'fleet-partitions.yml')
BASELINE = {'ping': 4.6, 'site first': 83.0, 'site rerun': 63.0}   # issue 11, one 8-vCPU guest, before


def collections_for(checkout):
    """A folder holding ansible_collections/parker/kernel -> checkout."""
    top = os.path.join(tempfile.gettempdir(), 'parker-bench-%s' % hashlib.sha256(checkout.encode()).hexdigest()[:12])
    link = os.path.join(top, 'ansible_collections', 'parker', 'kernel')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(checkout, link)
    return top


ENV = harness.ansible_env()


def timed(argv):
    started = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit('%s failed:\n%s' % (' '.join(argv[:4]), proc.stdout[-3000:]))
    return elapsed, proc.stdout


def playbook(checkout, name, extra=()):
    command = os.path.join(REPO, '.venv', 'bin', 'ansible-playbook')
    argv = [command, '-i', os.path.join(harness.STATE_DIR, 'inventory.yml'),
            os.path.join(checkout, 'playbooks', name), '-e', '@' + os.path.join(checkout, VARS)]
    for value in extra:
        argv += ['-e', value]
    return argv


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--checkout', default=REPO, help='the checkout whose collection and playbooks run')
    parser.add_argument('-e', dest='extra', action='append', default=[],
                        help='an extra variable for the site.yml runs, e.g. -e parker_canaries=false')
    args = parser.parse_args()
    checkout = os.path.abspath(args.checkout)
    ENV['ANSIBLE_COLLECTIONS_PATH'] = collections_for(checkout)
    ping = [os.path.join(REPO, '.venv', 'bin', 'ansible'), '-i', os.path.join(harness.STATE_DIR, 'inventory.yml'),
            'all', '-m', 'ansible.builtin.ping']
    times = {'ping': [], 'site first': [], 'site rerun': [], 'teardown': []}
    for _round in range(args.rounds):
        times['ping'].append(timed(ping)[0])
        times['site first'].append(timed(playbook(checkout, 'site.yml', args.extra))[0])
        seconds, output = timed(playbook(checkout, 'site.yml', args.extra))
        recap = harness.recap(output)
        if any(h.get('changed') for h in recap.values()):
            raise SystemExit('the rerun changed something: %s' % recap)
        times['site rerun'].append(seconds)
        times['teardown'].append(timed(playbook(checkout, 'teardown.yml'))[0])
    medians = dict((k, statistics.median(v)) for k, v in times.items())
    ping_median = medians['ping']
    print('| run | samples (s) | median (s) | in ping rounds | ratio to the baseline |')
    print('|---|---|---|---|---|')
    for name in ('ping', 'site first', 'site rerun', 'teardown'):
        base = BASELINE.get(name)
        print('| %s | %s | %.1f | %.1f | %s |' % (name, ', '.join('%.1f' % t for t in times[name]), medians[name],
                                                  medians[name] / ping_median,
                                                  '%.2f' % (medians[name] / base) if base else '-'))
    print(json.dumps({'checkout': checkout, 'guests': len(harness.fleet_state()['guests']), 'extra': args.extra,
                      'medians': medians}))


if __name__ == '__main__':
    main()
