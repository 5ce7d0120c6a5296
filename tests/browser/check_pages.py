"""Render the planner's pictures and fleet page for a sample fleet, and check them in headless Chromium.

Plans a synthetic fleet (10,000 hosts by default, five hardware classes, one host with odd hardware, one
class the intent does not fit), writes index.html, one SVG per hardware class and SVGs for some hosts, then
loads them in Chromium (Debian's ``chromium``; ``CHROMIUM`` overrides) and checks that:

- every SVG renders with a non-zero size (a test page loads them as images and writes their sizes);
- index.html loads without a script error and lists every host, with only the rows on screen in the DOM;
- its search (``#q=host00042``, as typed into the box) leaves that host alone and shows its picture;
- the status filter finds exactly the refused hosts, and a hardware class filter finds its hosts.

Quick enough for CI (about 10-20 s on two cores). ``--out DIR`` keeps the pages, ``--screenshots`` also
takes PNG screenshots there to look at.

    .venv/bin/python tests/browser/check_pages.py [--hosts 10000] [--out DIR] [--screenshots]
"""
from __future__ import absolute_import, division, print_function

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'unit'))
sys.path.insert(0, os.path.join(REPO, 'tests'))
# tests/conftest.py makes ansible_collections.parker.kernel importable from this checkout.
import conftest  # noqa: E402,F401  pylint: disable=unused-import
from synthfacts import synth, intel_2s, amd_nps4  # noqa: E402
from ansible_collections.parker.kernel.plugins.module_utils import _planner, _picture, _fingerprint  # noqa: E402

INTENT = {
    'housekeeping': {'cores_per_node': 1},
    'address_pools': {'fabric': {'network': '10.64.0.0/12', 'gateway': '10.64.0.1', 'first': 16, 'stride': 4}},
    'partitions': [
        {'name': 'web', 'cpus': 4, 'node': 1, 'memory': '16G', 'devices': [{'class': 'net'}],
         'network': {'pool': 'fabric', 'slot': 0, 'hostname': '{host}-web'}},
        {'name': 'db', 'cpus': '10%', 'memory': '25%', 'devices': [{'class': 'nvme'}]},
        {'name': 'batch', 'cpus': 'rest', 'node': 0, 'memory': '8G'},
        {'name': 'edge', 'cpus': 2, 'placement': 'spread', 'smt': 'single', 'memory': '2G'},
    ],
}
# Hardware families as the inventory groups them; 'odd' is an Intel host with half the memory on node 1,
# 'memless' a part whose node 1 has no memory (the intent pins web there: refused).
FAMILIES = [
    ('intel', intel_2s),
    ('intel', lambda: intel_2s(numbering='interleaved', bus_offset=4)),
    ('amd', amd_nps4),
    ('arm', lambda: synth(sockets=1, nodes_per_socket=2, cores_per_node=32, threads=1, numbering='adjacent',
                          llc_cores=16, model=None)),
    ('memless', lambda: synth(sockets=2, cores_per_node=12, memoryless=(1,), node_gib=128)),
]


def chromium_binary():
    for name in (os.environ.get('CHROMIUM'), 'chromium', 'chromium-browser', 'google-chrome'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def chromium(binary, url, extra, profile, timeout=90):
    cmd = [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--user-data-dir=' + profile, '--enable-logging=stderr', '--v=0'] + extra + [url]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False)
    return done.stdout.decode('utf-8', 'replace'), done.stderr.decode('utf-8', 'replace')


def build(out, count):
    """Plan the sample fleet and write its pages; returns what the checks need to know."""
    templates = [(family, make()) for family, make in FAMILIES]
    odd = intel_2s(node_gib=[128, 64], bus_offset=8)
    plans, groups, facts_of, prints = {}, {}, {}, {}
    for index in range(count):
        host = 'host%05d' % index
        family, facts = templates[index % len(templates)]
        if index == 7:
            family, facts = 'intel', odd
        plan = _planner.plan_host(facts, INTENT, {'name': host, 'index': index})
        plans[host] = plan
        facts_of[host] = facts
        groups.setdefault(family, []).append(host)
        prints[host] = plan['fingerprint']
    outliers = _fingerprint.outliers(prints, groups)
    classes = _fingerprint.hardware_classes(plans)
    os.makedirs(os.path.join(out, 'hosts'), exist_ok=True)
    os.makedirs(os.path.join(out, 'classes'), exist_ok=True)
    written = []
    for cid, entry in sorted(classes.items()):
        first = entry['hosts'][0]
        refused = sum(1 for h in entry['hosts'] if plans[h]['refused'])
        path = os.path.join(out, 'classes', cid + '.svg')
        with open(path, 'w') as handle:
            handle.write(_picture.class_svg(facts_of[first], plans[first], entry['hosts'], refused))
        written.append('classes/%s.svg' % cid)
    drawn = sorted(set(list(plans)[:40] + [o['host'] for o in outliers] +
                       [h for h in sorted(plans) if plans[h]['refused']][:10]))
    for host in drawn:
        with open(os.path.join(out, 'hosts', host + '.svg'), 'w') as handle:
            handle.write(_picture.host_svg(facts_of[host], plans[host]))
        written.append('hosts/%s.svg' % host)
    with open(os.path.join(out, 'index.html'), 'w') as handle:
        handle.write(_picture.fleet_index(plans, classes, outliers, pictures=drawn,
                                          title='Sample fleet: %d hosts' % count))
    # A page that loads every picture as an image and writes down the size each rendered at.
    items = ''.join('<img src="%s" alt="%s">' % (p, p) for p in written)
    with open(os.path.join(out, 'check.html'), 'w') as handle:
        handle.write('<!DOCTYPE html><html><body>%s<pre id="sizes"></pre><script>'
                     'window.addEventListener("load",function(){var r=[];'
                     'document.querySelectorAll("img").forEach(function(i){r.push(i.getAttribute("src")+" "+'
                     'i.naturalWidth+"x"+i.naturalHeight);});'
                     'document.getElementById("sizes").textContent=r.join("\\n");});</script></body></html>'
                     % items)
    refused = sorted(h for h in plans if plans[h]['refused'])
    return {'written': written, 'refused': refused, 'outliers': outliers, 'classes': classes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--out', help='keep the pages (and screenshots) in this directory')
    parser.add_argument('--screenshots', action='store_true')
    args = parser.parse_args()
    binary = chromium_binary()
    if not binary:
        print('check_pages: no Chromium found (apt-get install chromium, or set CHROMIUM)')
        return 2
    started = time.time()
    out = args.out or tempfile.mkdtemp(prefix='parker-pages-')
    profile = tempfile.mkdtemp(prefix='parker-chromium-')
    failures = []

    def expect(ok, what):
        print('%s %s' % ('ok  ' if ok else 'FAIL', what))
        if not ok:
            failures.append(what)
    try:
        sample = build(out, args.hosts)
        print('built %d hosts, %d classes, %d pictures, %d refused, %d odd in %.1f s'
              % (args.hosts, len(sample['classes']), len(sample['written']), len(sample['refused']),
                 len(sample['outliers']), time.time() - started))
        index = 'file://' + os.path.join(out, 'index.html')
        dump = ['--dump-dom', '--virtual-time-budget=4000']
        # Every picture renders with a size.
        dom, _log = chromium(binary, 'file://' + os.path.join(out, 'check.html'), dump, profile)
        listed = re.search(r'<pre id="sizes">([^<]*)</pre>', dom)
        sizes = re.findall(r'(\S+\.svg) (\d+)x(\d+)', listed.group(1) if listed else '')
        expect(len(sizes) == len(sample['written']), 'check.html reports a size for all %d pictures (%d)'
               % (len(sample['written']), len(sizes)))
        bad = [s for s in sizes if int(s[1]) < 200 or int(s[2]) < 100]
        expect(not bad, 'every picture renders at least 200x100 px%s' % (': %s' % bad[:3] if bad else ''))
        # The whole list: every host counted, only a screenful of rows in the DOM, no script error.
        dom, log = chromium(binary, index, dump, profile)
        ready = re.search(r'data-ready="(\d+)"', dom)
        expect(ready and int(ready.group(1)) == args.hosts, 'index.html lists all %d hosts' % args.hosts)
        rows = len(re.findall(r'class="row', dom))
        expect(0 < rows < 120, 'only the rows on screen are in the DOM (%d)' % rows)
        errors = [line for line in log.splitlines() if 'Uncaught' in line or 'SyntaxError' in line]
        expect(not errors, 'no script error%s' % (': %s' % errors[:2] if errors else ''))
        # The search box, through the address the page keeps it in.
        dom, log = chromium(binary, index + '#q=host00012', dump, profile)
        rows = re.search(r'<div id="rows">(.*?)</div></div>', dom, re.S)
        found = re.findall(r'<span class="h">([^<]+)</span>', rows.group(1) if rows else '')
        expect(found == ['host00012'], 'searching host00012 leaves that host alone (%s)' % found[:3])
        expect('<img alt="host00012" src="hosts/host00012.svg">' in dom, 'and shows its picture')
        dom, log = chromium(binary, index + '#q=&s=refused', dump, profile)
        ready = re.search(r'data-ready="(\d+)"', dom)
        expect(ready and int(ready.group(1)) == len(sample['refused']),
               'the refused filter finds the %d refused hosts' % len(sample['refused']))
        odd = sample['outliers'][0]
        dom, log = chromium(binary, index + '#q=&c=' + odd['fingerprint'], dump, profile)
        ready = re.search(r'data-ready="(\d+)"', dom)
        expect(ready and int(ready.group(1)) == 1 and odd['host'] in dom,
               'the class filter finds the one host of class %s (%s)' % (odd['fingerprint'], odd['host']))
        if args.screenshots:
            shots = [('index.png', index + '#q=host00012'), ('index-refused.png', index + '#q=&s=refused'),
                     ('class.png', 'file://' + os.path.join(out, sample['written'][0])),
                     ('host.png', 'file://' + os.path.join(out, 'hosts', 'host00002.svg'))]
            for name, url in shots:
                chromium(binary, url, ['--screenshot=' + os.path.join(out, name), '--window-size=1400,1000',
                                       '--virtual-time-budget=3000'], profile)
                expect(os.path.exists(os.path.join(out, name)), 'screenshot %s' % os.path.join(out, name))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    print('%s in %.1f s%s' % ('FAILED' if failures else 'passed', time.time() - started,
                              (', pages in %s' % out) if args.out else ''))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
