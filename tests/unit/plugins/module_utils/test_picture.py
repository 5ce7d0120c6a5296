"""Pictures: well-formed, complete, deterministic, escaped."""
import json
import re
import xml.etree.ElementTree as ET

from ansible_collections.parker.kernel.tests.unit.synthfacts import intel_2s, amd_nps4, synth
from ansible_collections.parker.kernel.plugins.module_utils import _picture, _planner, _fingerprint

INTENT = {'partitions': [
    {'name': 'web', 'cpus': 4, 'node': 1, 'memory': '8G', 'devices': [{'class': 'net'}]},
    {'name': 'edge', 'cpus': 2, 'placement': 'spread', 'memory': '1G', 'smt': 'single'}]}
SVG = '{http://www.w3.org/2000/svg}'


def test_host_svg_is_well_formed_and_shows_every_thread():
    facts = amd_nps4()
    plan = _planner.plan_host(facts, INTENT, 'amd1')
    svg = _picture.host_svg(facts, plan, title='amd<1>&')
    root = ET.fromstring(svg)
    assert root.tag == SVG + 'svg' and int(root.get('width')) <= 1400
    titles = [t.text for t in root.iter(SVG + 'title')]
    assert titles[0] == 'amd<1>& \u00b7 %s' % plan['fingerprint']
    cores = [t for t in titles if t.startswith('CPUs ')]
    assert len(cores) == 128
    web = [t for t in cores if t.endswith('web')]
    assert len(web) == 4 and all('node 1' in t for t in web)
    assert sum(1 for t in cores if 'edge' in t) == 2
    assert svg == _picture.host_svg(facts, plan, title='amd<1>&')   # deterministic
    texts = ' '.join(t.text or '' for t in root.iter(SVG + 'text'))
    assert 'socket 1' in texts and 'node 7' in texts and 'Boot Kernel (housekeeping)' in texts


def test_refused_plan_shows_its_reasons_and_held_cpus():
    facts = intel_2s(parker_partitions=[{'name': 'legacy', 'cpus': '5,37', 'memory': None, 'devices': []}])
    plan = _planner.plan_host(facts, {'partitions': [{'name': 'p', 'cpus': 40, 'memory': '1G'}]}, 'h')
    root = ET.fromstring(_picture.host_svg(facts, plan))
    texts = [t.text for t in root.iter(SVG + 'text')]
    assert 'REFUSED \u00b7 1 reason' in texts
    assert any(t and 'no node has room for p' in t for t in texts)
    held = [t.text for t in root.iter(SVG + 'title') if t.text.startswith('CPUs 5,37')]
    assert held == ['CPUs 5,37 \u00b7 node 0 \u00b7 held by a partition outside the plan']


def test_topology_only_and_class_picture():
    facts = synth(sockets=1, nodes_per_socket=2, cores_per_node=4, threads=1, memoryless=(1,))
    root = ET.fromstring(_picture.host_svg(facts, None))
    assert 'topology only' in [t.text for t in root.iter(SVG + 'text')]
    plan = _planner.plan_host(intel_2s(), INTENT, 'a')
    svg = _picture.class_svg(intel_2s(), plan, ['b', 'a'], refused=1)
    assert 'hardware class %s' % plan['fingerprint'] in svg and '2 hosts in this class, 1 refused' in svg


def test_fleet_index_embeds_safe_data_and_no_external_assets():
    facts = intel_2s()
    plans = dict(('h%d' % i, _planner.plan_host(facts, INTENT, 'h%d' % i)) for i in range(3))
    plans['</script><b>'] = _planner.plan_host(amd_nps4(), {'partitions': [
        {'name': 'p', 'cpus': 99, 'node': 1, 'memory': '1G'}]}, 'x')
    prints = dict((h, p['fingerprint']) for h, p in plans.items())
    page = _picture.fleet_index(plans, outliers=_fingerprint.outliers(prints), pictures=['h1'])
    assert page.count('</script>') == 2 and 'http://' not in page and 'https://' not in page
    data = json.loads(re.search(r'<script type="application/json" id="fleet-data">(.*?)</script>', page, re.S)
                      .group(1))
    hosts = dict((h[0], h) for h in data['hosts'])
    assert hosts['</script><b>'][2] == 1 and hosts['</script><b>'][5] == 1   # refused, odd hardware
    assert hosts['h1'][7] == 1 and hosts['h0'][7] == 0
    assert [c['hosts'] for c in data['classes']] == [3, 1]
    assert page == _picture.fleet_index(plans, outliers=_fingerprint.outliers(prints), pictures=['h1'])
