#!/usr/bin/env python3
"""Benchmark: one host's plan picture (SVG) for the 512-CPU hosts of bench/plan_fleet.py (issue 12).

Times host_svg() for each hardware class's host, median of N runs, and the first call of a fresh process
(which also builds the host's topology). Target: under 20 ms per host.

    .venv/bin/python bench/plan_svg.py [--runs 21]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan_fleet  # noqa: E402  (sets up the import path)
from ansible_collections.parker.kernel.plugins.module_utils import _picture, _planner, _topology  # noqa: E402

TARGET_MS = 20.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=21)
    args = parser.parse_args()
    fleet = plan_fleet.Fleet()
    worst = 0.0
    for cls, (name, _options) in enumerate(plan_fleet.CLASSES):
        facts = fleet.host(cls)
        plan = _planner.plan_host(facts, plan_fleet.INTENT, {'name': 'host%05d' % cls, 'index': cls})
        _topology._CACHE.clear()
        started = time.perf_counter()
        svg = _picture.host_svg(facts, plan)
        first = (time.perf_counter() - started) * 1000
        times, cpu = [], []
        for _run in range(args.runs):
            started, started_cpu = time.perf_counter(), time.process_time()
            _picture.host_svg(facts, plan)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        median = statistics.median(times)
        worst = max(worst, median)
        print('%-11s %4d CPUs  %7d bytes  first %.1f ms  median %.1f ms wall (min %.1f), %.1f ms CPU  ratio %.2f'
              % (name, len(facts['cpus']['list']), len(svg), first, median, min(times), statistics.median(cpu),
                 median / TARGET_MS))
    print('worst median %.1f ms, ratio to the %.0f ms target %.2f (load average %.1f)'
          % (worst, TARGET_MS, worst / TARGET_MS, os.getloadavg()[0]))


if __name__ == '__main__':
    main()
