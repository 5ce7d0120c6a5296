"""Intent validation: every problem at once, each naming where it is."""
from fractions import Fraction

import pytest
import yaml

from ansible_collections.parker.kernel.plugins.module_utils import _intent
from ansible_collections.parker.kernel.plugins.module_utils._intent import validate, validate_identity, IntentError


def errors_of(intent):
    with pytest.raises(IntentError) as exc:
        validate(intent)
    return exc.value.errors


def test_defaults_and_normal_form():
    normal = validate({'partitions': [{'name': 'p', 'cpus': 4, 'memory': '4G'}]})
    assert normal['housekeeping'] == {'per': 'node', 'cores': 1, 'memory': 0}
    assert normal['memory_unit'] == 1 << 30 and normal['memory_pool'] == 'free'
    part = normal['partitions'][0]
    assert part['cpus'] == ('cores', 4) and part['memory'] == ('size', 4 << 30)
    assert (part['placement'], part['smt'], part['cache'], part['node']) == ('packed', 'whole', 'prefer', None)
    assert len(normal['digest']) == 12 and normal['names'] == frozenset(['p'])
    shares = validate({'partitions': [{'name': 'p', 'cpus': '12.5%', 'node': 1, 'memory': '50%'}]})
    assert shares['partitions'][0]['cpus'] == ('share', Fraction(1, 8))
    assert shares['partitions'][0]['memory'] == ('share', Fraction(1, 2))


def test_yaml_booleans_are_refused_where_a_value_is_expected():
    intent = yaml.safe_load('''
partitions:
  - name: p
    cpus: yes
    node: on
    memory: 4G
    console: no
    network: {hostname: true}
''')
    assert errors_of(intent) == [
        'partitions[0] (p).node: expected a whole number, got the YAML boolean true (yes/no/on/off/true/false are '
        'booleans in YAML; quote it if you mean text)',
        'partitions[0] (p).cpus: expected a number of whole cores (8), a share ("25%") or "rest", got the YAML '
        'boolean true (yes/no/on/off/true/false are booleans in YAML; quote it if you mean text)',
        'partitions[0] (p).network.hostname: expected text, got the YAML boolean true (yes/no/on/off/true/false are '
        'booleans in YAML; quote it if you mean text)',
        'partitions[0] (p).console: expected text, got the YAML boolean false (yes/no/on/off/true/false are '
        'booleans in YAML; quote it if you mean text)',
    ]


def test_every_problem_is_reported_at_once():
    intent = {
        'housekeeping': {'cores_per_node': -1, 'cores_per_socket': 1},
        'memory_unit': 4096,
        'colour': 'blue',
        'partitions': [
            {'name': 'a/b', 'cpus': '150%', 'memory': '120%'},
            {'name': 'two\nlines', 'cpus': -2, 'memory': 4096},
            {'name': 'c', 'cpus': '8', 'memory': '1G', 'devices': [{'class': 'net', 'count': -1}, {'count': 2}]},
            {'name': 'c', 'cpus': 2.5, 'memory': '0'},
            {'name': 'd', 'cpus': 'rest', 'memory': '1G', 'placement': 'diagonal'},
            {'cpus': 1, 'memory': '1G', 'cpu': 3},
        ],
    }
    assert errors_of(intent) == [
        "unknown key 'colour' (known: version, hardware_class, housekeeping, memory_unit, memory_pool, "
        "address_pools, partitions)",
        'housekeeping: give cores_per_node or cores_per_socket, not both',
        'housekeeping.cores_per_node: -1 is negative; it must be at least 0',
        'memory_unit: expected a size such as 4G, got 4096 (give a unit: 4G, 512M)',
        "partitions[0].name: 'a/b' is malformed (use letters, digits, \"_\", \".\" and \"-\", up to 64, starting "
        "with a letter or digit; no \"/\")",
        'partitions[0].cpus: 150% is a share over 100%',
        'partitions[0].memory: 120% is a share over 100%',
        "partitions[1].name: 'two\\nlines' contains a newline or a control character",
        'partitions[1].cpus: -2 is negative; it must be at least 1',
        'partitions[1].memory: expected a size such as 4G, got 4096 (give a unit: 4G, 512M)',
        "partitions[2] (c).cpus: '8' is text: write 8 (no quotes) for 8 whole cores; an intent never names CPU "
        "numbers, the planner picks them",
        'partitions[2] (c).devices[0].count: -1 is negative; it must be at least 1',
        'partitions[2] (c).devices[1]: names no device: give class, vendor_device, vendor, driver or name',
        "partitions[3] (c).cpus: 2.5 is not a whole number of cores; write a share as a string, such as \"25%\"",
        'partitions[3] (c).memory: must be more than 0',
        'partitions[4] (d).placement: expected one of packed, spread, got \'diagonal\'',
        'partitions[4] (d).cpus: "rest" needs a node (the rest of node N) or placement: spread (the rest of the '
        'host)',
        'partitions[5]: has no name',
        "partitions[5]: unknown key 'cpu' (known: name, cpus, node, placement, smt, cache, memory, devices, network, "
        "start, kernel, initrd, console, root, cmdline, nokaslr, tsc_early_khz, health)",
        'partitions: the name c is used 2 times',
    ]


def test_scopes_shares_rests_pools():
    intent = {
        'address_pools': {'fab': {'network': '10.0.0.0/24', 'gateway': '10.1.0.1', 'stride': 2},
                          'bad': {'network': '10.0.0.1/24'}},
        'partitions': [
            {'name': 'a', 'cpus': '60%', 'node': 1, 'memory': '1G', 'network': {'pool': 'fab', 'slot': 2}},
            {'name': 'b', 'cpus': '50%', 'node': 1, 'memory': '1G', 'network': {'pool': 'nope'}},
            {'name': 'c', 'cpus': 'rest', 'node': 0, 'memory': '1G',
             'network': {'pool': 'fab', 'hostname': '{host}_{rack}'}},
            {'name': 'd', 'cpus': 'rest', 'node': 0, 'memory': '1G', 'node_local': True},
            {'name': 'e', 'cpus': 1, 'node': 1, 'placement': 'spread', 'memory': '1G',
             'devices': [{'class': 'tape'}, {'vendor_device': '8086-1592'}]},
        ],
    }
    assert errors_of(intent) == [
        'address_pools.bad.network: 10.0.0.1/24 has host bits set; the network is 10.0.0.0/24',
        'address_pools.fab.gateway: 10.1.0.1 is outside 10.0.0.0/24',
        'partitions[0] (a).network.slot: slot 2 is outside pool fab\'s stride of 2 addresses per host',
        "partitions[1] (b).network.pool: no address pool 'nope' (address_pools has: fab)",
        'partitions[2] (c).network.hostname: unknown placeholder {rack} (known: {host}, {short}, {partition}, '
        '{index})',
        "partitions[3] (d): unknown key 'node_local' (known: name, cpus, node, placement, smt, cache, memory, "
        "devices, network, start, kernel, initrd, console, root, cmdline, nokaslr, tsc_early_khz, health)",
        'partitions[4] (e): placement: spread and node: 1 contradict each other',
        'partitions[4] (e).devices[0].class: expected one of accelerator, crypto, display, ethernet, gpu, '
        "infiniband, net, nvme, raid, sas, sata, scsi, storage or a class code such as 0x0200, got 'tape'",
        "partitions[4] (e).devices[1].vendor_device: '8086-1592' is malformed (expected VVVV:DDDD)",
        'partitions: the CPU shares of node 1 add up to 110%, over 100% (a 60%, b 50%)',
        'partitions: c and d ask for the rest of node 0; only one can',
    ]


def test_not_a_mapping_and_no_partitions():
    assert errors_of(['a']) == ["expected a mapping, got a list"]
    assert errors_of({}) == ['partitions: expected a list of partitions, got null (an empty value)']
    assert errors_of({'partitions': [{'name': 'p'}]}) == [
        'partitions[0] (p): has no cpus (a number of whole cores, a share such as "25%" or "rest")',
        'partitions[0] (p): has no memory (a size such as 4G, or a share of its node\'s memory such as "25%")']


def test_passthrough_and_canonical_key():
    intent = {'partitions': [{'name': 'p', 'cpus': 1, 'memory': '1G', 'start': False, 'kernel': '/boot/vmlinuz-x',
                              'cmdline': ['quiet', 'mitigations=off'], 'nokaslr': True, 'tsc_early_khz': 2100000,
                              'health': {'port': 22}}]}
    normal = validate(intent)
    assert normal['partitions'][0]['extra'] == [
        ('start', False), ('kernel', '/boot/vmlinuz-x'), ('cmdline', ['quiet', 'mitigations=off']),
        ('nokaslr', True), ('tsc_early_khz', '2100000'), ('health', {'port': 22})]
    reordered = {'partitions': [dict(reversed(list(intent['partitions'][0].items())))]}
    assert validate(reordered)['digest'] == normal['digest']
    assert errors_of({'partitions': [{'name': 'p', 'cpus': 1, 'memory': '1G', 'cmdline': ['a b'],
                                      'health': {'port': 0}}]}) == [
        "partitions[0] (p).cmdline[0]: 'a b' is malformed (one parameter, no spaces or quotes)",
        'partitions[0] (p).health.port: 0 is too small; it must be at least 1']


def test_validated_is_cached_by_content():
    intent = {'partitions': [{'name': 'p', 'cpus': 1, 'memory': '1G'}]}
    first = _intent.validated(intent)
    assert _intent.validated({'partitions': [{'memory': '1G', 'cpus': 1, 'name': 'p'}]}) is first
    assert _intent.validated(first) is first


def test_identity():
    assert validate_identity('node1') == {'name': 'node1', 'index': None, 'networks': {}}
    with pytest.raises(IntentError) as exc:
        validate_identity({'name': 'n', 'index': -1, 'networks': {'p': {'address': '10.0.0.1', 'gw': 1}}})
    assert exc.value.errors == [
        'host_identity.index: -1 is negative; it must be at least 0',
        "host_identity.networks.p: unknown key 'gw' (known: address, gateway, hostname, iface)",
        "host_identity.networks.p.address: '10.0.0.1': expected an IPv4 address with its prefix, such as "
        "192.0.2.11/24"]
    with pytest.raises(IntentError) as exc:
        validate_identity({'name': 'n', 'index': True, 'networks': {'p': {'address': '10.0.0.1'}}})
    assert exc.value.errors == [
        'host_identity.index: expected a whole number, got the YAML boolean true (yes/no/on/off/true/false are '
        'booleans in YAML; quote it if you mean text)',
        "host_identity.networks.p.address: '10.0.0.1': expected an IPv4 address with its prefix, such as "
        "192.0.2.11/24"]
