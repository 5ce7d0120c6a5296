#!/usr/bin/env python3
"""Benchmark: plan a fleet of synthetic 512-CPU hosts with parker.kernel's planner (issue 12).

Five hardware classes of 512 CPUs each (Intel 2 sockets x 1 node and x 2 nodes, AMD NPS4 and NPS1 with
8-core LLC domains, a 512-core part without SMT), four partitions per host (node-pinned with a NIC and a
pool address, a share of the host with an NVMe, the rest of node 0, a spread one with single threads).
Hosts of one class differ as real ones do: two CPU numberings per class, PCI bus numbers, and free memory.
Each host's facts are built fresh (as the fact cache would hand them over) outside the timed part; only
plan_host() is timed. Target: 10,000 hosts in under 5 s, linear in hosts, peak RSS under 1 GiB.

    .venv/bin/python bench/plan_fleet.py --hosts 10000
    .venv/bin/python bench/plan_fleet.py --hosts 1000 --cold   # worst case: no two hosts alike, no cache
"""
import argparse
import json
import os
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'unit'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'fleet'))
import harness  # noqa: E402
sys.path.insert(0, harness.collections_path())
from synthfacts import synth, NIC, NVME, GPU  # noqa: E402
from ansible_collections.parker.kernel.plugins.module_utils import _planner  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_HOSTS = 10000

CLASSES = [
    ('intel-2s', dict(sockets=2, nodes_per_socket=1, cores_per_node=128, threads=2, node_gib=512,
                      model='Intel(R) Xeon(R) 6980P')),
    ('intel-snc2', dict(sockets=2, nodes_per_socket=2, cores_per_node=64, threads=2, node_gib=256, llc_cores=64,
                        model='Intel(R) Xeon(R) Platinum 8592+')),
    ('amd-nps4', dict(sockets=2, nodes_per_socket=4, cores_per_node=32, threads=2, llc_cores=8, node_gib=192,
                      model='AMD EPYC 9654 96-Core Processor')),
    ('amd-nps1', dict(sockets=2, nodes_per_socket=1, cores_per_node=128, threads=2, llc_cores=8, node_gib=768,
                      model='AMD EPYC 9754 128-Core Processor',
                      devices=[{'type': NIC, 'node': 0, 'count': 2}, {'type': NVME, 'node': 0, 'count': 2},
                               {'type': NIC, 'node': 1, 'count': 2}, {'type': NVME, 'node': 1, 'count': 2},
                               {'type': GPU, 'node': 1, 'count': 2}])),
    ('arm-512', dict(sockets=2, nodes_per_socket=2, cores_per_node=128, threads=1, llc_cores=32, node_gib=256,
                     numbering='adjacent', model=None)),
]

INTENT = {
    'housekeeping': {'cores_per_node': 1},
    'address_pools': {'fabric': {'network': '10.64.0.0/12', 'gateway': '10.64.0.1', 'first': 16, 'stride': 4}},
    'partitions': [
        {'name': 'web', 'cpus': 16, 'node': 1, 'memory': '32G', 'devices': [{'class': 'net'}],
         'network': {'pool': 'fabric', 'slot': 0, 'hostname': '{host}-web'}},
        {'name': 'db', 'cpus': '10%', 'memory': '25%', 'devices': [{'class': 'nvme'}]},
        {'name': 'batch', 'cpus': 'rest', 'node': 0, 'memory': '64G'},
        {'name': 'edge', 'cpus': 8, 'placement': 'spread', 'smt': 'single', 'memory': '8G'},
    ],
}


class Fleet(object):
    """Templates per (class, numbering, bus offset); each host gets fresh copies of them."""

    def __init__(self):
        self.templates = {}

    def template(self, cls, numbering, offset):
        key = (cls, numbering, offset)
        if key not in self.templates:
            options = dict(CLASSES[cls][1])
            if options.get('numbering') != 'adjacent':
                options['numbering'] = numbering
            self.templates[key] = synth(bus_offset=offset, **options)
        return self.templates[key]

    def host(self, index):
        cls = index % len(CLASSES)
        numbering = ('split', 'interleaved')[(index // len(CLASSES)) % 2]
        base = self.template(cls, numbering, (index // 10) % 4)
        facts = {
            'cpus': dict(base['cpus'], list=[dict(c) for c in base['cpus']['list']]),
            'numa': dict(base['numa'], nodes=[dict(n) for n in base['numa']['nodes']]),
            'memory': dict(base['memory'], blocks=[dict(b) for b in base['memory']['blocks']]),
            'pci': dict(base['pci'], devices=[dict(d) for d in base['pci']['devices']]),
            'parker': dict(base['parker']),
        }
        for node in facts['numa']['nodes']:
            # Free memory moves a little from host to host (page cache, slabs).
            node['mem_free'] = node['mem_free'] - (index % 13) * (256 << 20)
        return facts


def run(hosts, cold=False):
    fleet = Fleet()
    _planner.clear_caches()
    planned, refused, elapsed, cpu = [], 0, 0.0, 0.0
    fingerprints = set()
    for index in range(hosts):
        facts = fleet.host(index)
        identity = {'name': 'host%05d' % index, 'index': index}
        if cold:
            _planner.clear_caches()
        started, started_cpu = time.perf_counter(), time.process_time()
        plan = _planner.plan_host(facts, INTENT, identity)
        elapsed += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        refused += plan['refused']
        fingerprints.add(plan['fingerprint'])
        planned.append(plan)
    return elapsed, cpu, refused, len(fingerprints), planned


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--hosts', type=int, default=TARGET_HOSTS)
    parser.add_argument('--cold', action='store_true',
                        help='forget every cache before each host: the cost when no two hosts are alike')
    parser.add_argument('--show', type=int, default=0, help='print the plans of the first N hosts')
    args = parser.parse_args()
    started = time.perf_counter()
    elapsed, cpu, refused, classes, plans = run(args.hosts, args.cold)
    wall = time.perf_counter() - started
    load = os.getloadavg()[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for plan in plans[:args.show]:
        print(json.dumps(plan, sort_keys=True, indent=1))
    per_host = elapsed / args.hosts
    print('hosts=%d classes=%d refused=%d (load average %.1f)' % (args.hosts, classes, refused, load))
    print('plan_host total %.3f s wall, %.3f s CPU; %.1f us wall, %.1f us CPU per host; with building the facts '
          '%.1f s' % (elapsed, cpu, per_host * 1e6, cpu / args.hosts * 1e6, wall))
    print('projected for %d hosts: %.2f s wall (ratio to the %.0f s target %.2f), %.2f s CPU (ratio %.2f)' % (
        TARGET_HOSTS, per_host * TARGET_HOSTS, TARGET_SECONDS, per_host * TARGET_HOSTS / TARGET_SECONDS,
        cpu / args.hosts * TARGET_HOSTS, cpu / args.hosts * TARGET_HOSTS / TARGET_SECONDS))
    print('peak RSS %.0f MiB (target < 1024 MiB)' % (peak / float(1 << 20)))


if __name__ == '__main__':
    main()
