#!/usr/bin/env python3
"""Benchmark: partition_facts' gather() on a large synthetic host.

Builds a fake sysfs/procfs tree (1024 CPUs, 8 NUMA nodes, 4096 memory blocks,
512 PCI devices) once, then times the full gather, all subsets, several times.
Target (issue 3): under 0.3 s. Prints the median and its ratio to the target.

    .venv/bin/python bench/facts_large_host.py [--runs N]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'unit'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'fleet'))
import harness  # noqa: E402
sys.path.insert(0, harness.collections_path())  # ansible_collections/parker/kernel -> this checkout
from fakehost import FakeHost  # noqa: E402
from ansible_collections.parker.kernel.plugins.module_utils._facts import gather  # noqa: E402
from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO  # noqa: E402

TARGET_SECONDS = 0.3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as top:
        started = time.time()
        host = FakeHost(os.path.join(top, 'root')).build_large()
        print('built tree in %.1f s' % (time.time() - started))
        io = HostIO(host.root, environ={})
        gather(io)  # warm the dentry cache, as a second Ansible run would find it
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            facts = gather(io)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print('cpus=%d nodes=%d blocks=%d devices=%d' % (len(facts['cpus']['list']), len(facts['numa']['nodes']),
                                                         len(facts['memory']['blocks']), len(facts['pci']['devices'])))
        print('gather(all): median %.3f s, min %.3f s, max %.3f s over %d runs' % (
            median, min(times), max(times), args.runs))
        print('ratio to the %.1f s target: %.2f' % (TARGET_SECONDS, median / TARGET_SECONDS))


if __name__ == '__main__':
    main()
