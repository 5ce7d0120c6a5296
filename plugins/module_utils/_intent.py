# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Partition intent: what a group or hardware class asks of each of its hosts, validated (pure, controller side).

An intent never names a CPU, a memory address or a PCI address: it says how many whole cores, how much
memory and which kinds of devices each partition gets, and where (a node, packed in one node, spread).
The planner (_planner.py) turns it into concrete partitions for one host from that host's facts.
docs/planner.md is the reference; ``validate`` checks everything that can be checked without a host
and returns the normalised form the planner reads. Every problem is reported at once (IntentError).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import re
from fractions import Fraction

from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse, SizeError

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # pragma: no cover - only address pools need it
    netaddr = None
    HAS_NETADDR = False

NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')   # the partition module's rule, bounded
_SHARE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*%\s*$')
_HEX4 = re.compile(r'^[0-9a-fA-F]{4}$')
_VENDOR_DEVICE = re.compile(r'^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$')
_CLASS_HEX = re.compile(r'^(?:0x)?([0-9a-fA-F]{2}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6})$')
_DRIVER = re.compile(r'^[A-Za-z0-9_.-]+$')
_PATTERN = re.compile(r'^[A-Za-z0-9_.:*?\[\]!-]+$')
_PLACEHOLDER = re.compile(r'\{([^{}]*)\}')
_TOKEN_TEXT = re.compile(r'^[^\s"\'\\;|&<>`$]+$')

TOP_KEYS = ('version', 'hardware_class', 'housekeeping', 'memory_unit', 'memory_pool', 'address_pools', 'partitions')
HOUSEKEEPING_KEYS = ('cores_per_node', 'cores_per_socket', 'memory_per_node')
PARTITION_KEYS = ('name', 'cpus', 'node', 'placement', 'smt', 'cache', 'memory', 'devices', 'network')
# Per-partition settings the planner does not interpret: copied to the plan as the partitions role takes them.
PASSTHROUGH = ('start', 'kernel', 'initrd', 'console', 'root', 'cmdline', 'nokaslr', 'tsc_early_khz', 'health')
DEVICE_KEYS = ('class', 'vendor', 'vendor_device', 'driver', 'name', 'count', 'local')
NETWORK_KEYS = ('pool', 'slot', 'hostname', 'iface')
POOL_KEYS = ('network', 'gateway', 'first', 'stride')
HOSTNAME_FIELDS = ('host', 'short', 'partition', 'index')

# Device classes by name: the PCI class code prefix they match (the facts' class, 0xCCSSPP).
DEVICE_CLASSES = {
    'storage': '01', 'scsi': '0100', 'raid': '0104', 'sata': '0106', 'sas': '0107', 'nvme': '0108',
    'net': '02', 'ethernet': '0200', 'infiniband': '0207',
    'display': '03', 'gpu': '03',
    'crypto': '10', 'accelerator': '12',
}
PLACEMENTS = ('packed', 'spread')
SMT_POLICIES = ('whole', 'single')
CACHE_POLICIES = ('prefer', 'ignore')
LOCALITY = ('prefer', 'require')
MEMORY_POOLS = ('free', 'cma')
DEFAULT_UNIT = 1 << 30   # the Parker CMA area's allocation unit: whole GiB per partition
MAX_COUNT = 1 << 16


class IntentError(ValueError):
    """A bad intent (or host identity): ``errors`` lists every problem, each naming where it is."""

    def __init__(self, errors, what='parker intent'):
        self.errors = list(errors)
        ValueError.__init__(self, '%s: %s' % (what, '; '.join(self.errors)))


def _type_name(value):
    if isinstance(value, bool):
        return 'the YAML boolean %s (yes/no/on/off/true/false are booleans in YAML; quote it if you mean text)' \
            % ('true' if value else 'false')
    if value is None:
        return 'null (an empty value)'
    if isinstance(value, dict):
        return 'a mapping'
    if isinstance(value, (list, tuple)):
        return 'a list'
    return '%r' % (value,)


class _Checker(object):
    def __init__(self):
        self.errors = []

    def error(self, where, message):
        self.errors.append('%s: %s' % (where, message) if where else message)

    def keys(self, where, value, known):
        if not isinstance(value, dict):
            self.error(where, 'expected a mapping, got %s' % _type_name(value))
            return False
        for key in sorted(str(k) for k in value if k not in known):
            self.error(where, 'unknown key %r (known: %s)' % (key, ', '.join(known)))
        return True

    def integer(self, where, value, minimum=0, maximum=MAX_COUNT):
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(where, 'expected a whole number, got %s' % _type_name(value))
            return None
        if value < minimum:
            self.error(where, '%d is %s; it must be at least %d' % (value, 'negative' if value < 0 else 'too small',
                                                                    minimum))
            return None
        if value > maximum:
            self.error(where, '%d is more than %d' % (value, maximum))
            return None
        return value

    def text(self, where, value, pattern=None, hint=''):
        if not isinstance(value, str) or isinstance(value, bool):
            self.error(where, 'expected text, got %s' % _type_name(value))
            return None
        if '\n' in value or '\r' in value or '\x00' in value:
            self.error(where, '%r contains a newline or a control character' % (value,))
            return None
        if pattern is not None and not pattern.match(value):
            self.error(where, '%r is malformed%s' % (value, hint))
            return None
        return value

    def choice(self, where, value, choices):
        if value not in choices or isinstance(value, bool):
            self.error(where, 'expected one of %s, got %s' % (', '.join(choices), _type_name(value)))
            return None
        return value

    def size(self, where, value, allow_zero=False):
        if isinstance(value, bool) or not isinstance(value, str):
            hint = ' (give a unit: 4G, 512M)' if isinstance(value, int) and not isinstance(value, bool) else ''
            self.error(where, 'expected a size such as 4G, got %s%s' % (_type_name(value), hint))
            return None
        try:
            size = memparse(value)
        except SizeError as exc:
            self.error(where, str(exc))
            return None
        if size <= 0 and not allow_zero:
            self.error(where, 'must be more than 0')
            return None
        return size

    def share(self, where, value):
        """'25%' -> Fraction(1, 4); None (after an error) when it is not a share."""
        match = _SHARE.match(value)
        if not match:
            return None
        share = Fraction(match.group(1)) / 100
        if share <= 0:
            self.error(where, '%s is not a share of anything; it must be more than 0%%' % value.strip())
            return False
        if share > 1:
            self.error(where, '%s is a share over 100%%' % value.strip())
            return False
        return share


def format_share(share):
    """Fraction(1, 8) -> '12.5%'."""
    text = '%s' % (float(share * 100),)
    return (text[:-2] if text.endswith('.0') else text) + '%'


def _cpus(check, where, value, node, placement):
    """('cores', n) | ('share', Fraction) | ('rest', None)."""
    if isinstance(value, bool) or value is None:
        check.error(where, 'expected a number of whole cores (8), a share ("25%%") or "rest", got %s'
                    % _type_name(value))
        return None
    if isinstance(value, int):
        count = check.integer(where, value, minimum=1)
        return ('cores', count) if count is not None else None
    if isinstance(value, float):
        check.error(where, '%r is not a whole number of cores; write a share as a string, such as "25%%"' % value)
        return None
    if not isinstance(value, str):
        check.error(where, 'expected a number of whole cores, a share or "rest", got %s' % _type_name(value))
        return None
    text = value.strip()
    if text == 'rest':
        if node is None and placement != 'spread':
            check.error(where, '"rest" needs a node (the rest of node N) or placement: spread (the rest of the host)')
            return None
        return ('rest', None)
    if text.isdigit():
        check.error(where, '%r is text: write %s (no quotes) for %s whole cores; an intent never names CPU numbers, '
                    'the planner picks them' % (value, text, text))
        return None
    share = check.share(where, text)
    if share is None:
        check.error(where, '%r is not a number of whole cores, a share ("25%%") or "rest"' % (value,))
        return None
    return ('share', share) if share is not False else None


def _memory(check, where, value):
    """('size', bytes) | ('share', Fraction)."""
    if isinstance(value, str) and _SHARE.match(value):
        share = check.share(where, value)
        return ('share', share) if share else None
    size = check.size(where, value)
    return ('size', size) if size is not None else None


def _device(check, where, value):
    if not check.keys(where, value, DEVICE_KEYS):
        return None
    request = {'class': None, 'vendor': None, 'device': None, 'driver': None, 'name': None, 'count': 1,
               'local': 'prefer'}
    labels = []
    if 'class' in value:
        klass = value['class']
        if isinstance(klass, str) and klass.lower() in DEVICE_CLASSES:
            request['class'] = DEVICE_CLASSES[klass.lower()]
            labels.append(klass.lower())
        elif isinstance(klass, str) and _CLASS_HEX.match(klass):
            request['class'] = _CLASS_HEX.match(klass).group(1).lower()
            labels.append('class 0x%s' % request['class'])
        else:
            check.error(where + '.class', 'expected one of %s or a class code such as 0x0200, got %s'
                        % (', '.join(sorted(DEVICE_CLASSES)), _type_name(klass)))
    if 'vendor_device' in value:
        text = check.text(where + '.vendor_device', value['vendor_device'], _VENDOR_DEVICE, ' (expected VVVV:DDDD)')
        if text:
            request['vendor'], request['device'] = text.lower().split(':')
            labels.append(text.lower())
    if 'vendor' in value:
        text = check.text(where + '.vendor', value['vendor'], _HEX4, ' (expected a 4-digit hex vendor id)')
        if text:
            if request['vendor'] not in (None, text.lower()):
                check.error(where, 'vendor %s and vendor_device %s disagree' % (text, value.get('vendor_device')))
            request['vendor'] = text.lower()
            if 'vendor_device' not in value:
                labels.append('vendor %s' % text.lower())
    if 'driver' in value:
        request['driver'] = check.text(where + '.driver', value['driver'], _DRIVER, ' (expected a driver name)')
        if request['driver']:
            labels.append('driver %s' % request['driver'])
    if 'name' in value:
        pattern = check.text(where + '.name', value['name'], _PATTERN,
                             ' (expected an interface or disk name, or a pattern such as ens2f*)')
        if pattern:
            request['name'] = pattern
            labels.append('name %s' % pattern)
    if 'count' in value:
        request['count'] = check.integer(where + '.count', value['count'], minimum=1, maximum=256) or 1
    if 'local' in value:
        request['local'] = check.choice(where + '.local', value['local'], LOCALITY) or 'prefer'
    if not any(k in value for k in ('class', 'vendor', 'vendor_device', 'driver', 'name')):
        check.error(where, 'names no device: give class, vendor_device, vendor, driver or name')
        return None
    if not any(request[k] for k in ('class', 'vendor', 'driver', 'name')):
        return None   # what it gave is wrong, and said so
    request['label'] = ' '.join(labels)
    return request


def _hostname_template(check, where, value):
    text = check.text(where, value)
    if text is None:
        return None
    for field in _PLACEHOLDER.findall(text):
        if field not in HOSTNAME_FIELDS:
            check.error(where, 'unknown placeholder {%s} (known: %s)'
                        % (field, ', '.join('{%s}' % f for f in HOSTNAME_FIELDS)))
            return None
    literal = _PLACEHOLDER.sub('x', text)
    if not re.match(r'^[A-Za-z0-9.-]+$', literal):
        check.error(where, '%r makes no valid host name (letters, digits, "-" and "." around the placeholders)'
                    % text)
        return None
    return text


def _network(check, where, value, pools):
    if not check.keys(where, value, NETWORK_KEYS):
        return None
    network = {'pool': None, 'slot': 0, 'hostname': None, 'iface': None}
    if 'pool' in value:
        pool = check.text(where + '.pool', value['pool'])
        if pool is not None and pool not in pools:
            check.error(where + '.pool', 'no address pool %r (address_pools has: %s)'
                        % (pool, ', '.join(sorted(pools)) or 'none'))
        network['pool'] = pool
    if 'slot' in value:
        slot = check.integer(where + '.slot', value['slot'], minimum=0)
        if slot is not None and network['pool'] in pools and slot >= pools[network['pool']]['stride']:
            check.error(where + '.slot', 'slot %d is outside pool %s\'s stride of %d addresses per host'
                        % (slot, network['pool'], pools[network['pool']]['stride']))
        network['slot'] = slot or 0
    if 'hostname' in value:
        network['hostname'] = _hostname_template(check, where + '.hostname', value['hostname'])
    if 'iface' in value:
        network['iface'] = check.text(where + '.iface', value['iface'], re.compile(r'^[A-Za-z0-9_.-]{1,15}$'),
                                      ' (expected an interface name)')
    return network


def _pools(check, value):
    pools = {}
    if value is None:
        return pools
    if not isinstance(value, dict):
        check.error('address_pools', 'expected a mapping of pool names to pools, got %s' % _type_name(value))
        return pools
    for name in sorted(value, key=str):
        where = 'address_pools.%s' % name
        spec = value[name]
        if not check.keys(where, spec, POOL_KEYS):
            continue
        if not HAS_NETADDR:
            check.error(where, 'address pools need the netaddr Python library on the controller')
            continue
        text = check.text(where + '.network', spec.get('network'))
        if text is None:
            continue
        try:
            net = netaddr.IPNetwork(text)
        except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
            check.error(where + '.network', '%r is not a network: %s' % (text, exc))
            continue
        if net.version != 4:
            check.error(where + '.network', 'the kernel ip= parameter takes IPv4 only')
            continue
        if net.ip != net.network:
            check.error(where + '.network', '%s has host bits set; the network is %s' % (text, net.cidr))
            continue
        pool = {'network': str(net.cidr), 'base': int(net.network), 'size': net.size, 'prefix': net.prefixlen,
                'gateway': None, 'first': 1, 'stride': 1}
        if 'gateway' in spec:
            gateway = check.text(where + '.gateway', spec['gateway'])
            if gateway is not None:
                try:
                    address = netaddr.IPAddress(gateway)
                except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
                    check.error(where + '.gateway', '%r is not an address: %s' % (gateway, exc))
                    address = None
                if address is not None and address not in net:
                    check.error(where + '.gateway', '%s is outside %s' % (gateway, net.cidr))
                elif address is not None:
                    pool['gateway'] = str(address)
        if 'first' in spec:
            first = check.integer(where + '.first', spec['first'], minimum=0, maximum=1 << 32)
            pool['first'] = first if first is not None else 1
        if 'stride' in spec:
            stride = check.integer(where + '.stride', spec['stride'], minimum=1, maximum=1 << 16)
            pool['stride'] = stride or 1
        pools[str(name)] = pool
    return pools


def _passthrough(check, where, value, key):
    if key in ('start', 'nokaslr'):
        if not isinstance(value, bool):
            check.error(where, 'expected true or false, got %s' % _type_name(value))
        return value
    if key in ('kernel', 'initrd', 'console', 'root'):
        return check.text(where, value, _TOKEN_TEXT, ' (no spaces, quotes or shell metacharacters)')
    if key == 'tsc_early_khz':
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            check.error(where, 'expected auto, off or a number of kHz, got %s' % _type_name(value))
            return None
        return str(value)
    if key == 'cmdline':
        if not isinstance(value, list):
            check.error(where, 'expected a list of kernel parameters, got %s' % _type_name(value))
            return None
        return [check.text('%s[%d]' % (where, i), token, _TOKEN_TEXT, ' (one parameter, no spaces or quotes)')
                for i, token in enumerate(value)]
    if key == 'health':
        if check.keys(where, value, ('port',)):
            if 'port' in value:
                check.integer(where + '.port', value['port'], minimum=1, maximum=65535)
            return dict(value)
        return None
    return value


def _partition(check, index, value, pools):
    where = 'partitions[%d]' % index
    if not isinstance(value, dict):
        check.error(where, 'expected a mapping, got %s' % _type_name(value))
        return None
    name = value.get('name')
    if name is None:
        check.error(where, 'has no name')
    else:
        name = check.text(where + '.name', name, NAME,
                          ' (use letters, digits, "_", "." and "-", up to 64, starting with a letter or digit; '
                          'no "/")')
        if name is not None:
            where = '%s (%s)' % (where, name)
    check.keys(where, value, PARTITION_KEYS + PASSTHROUGH)
    part = {'name': name, 'index': index}
    node = value.get('node')
    if node is not None:
        node = check.integer(where + '.node', node, minimum=0, maximum=4095)
    part['node'] = node
    part['placement'] = check.choice(where + '.placement', value.get('placement', 'packed'), PLACEMENTS) or 'packed'
    if node is not None and part['placement'] == 'spread':
        check.error(where, 'placement: spread and node: %d contradict each other' % node)
    part['smt'] = check.choice(where + '.smt', value.get('smt', 'whole'), SMT_POLICIES) or 'whole'
    part['cache'] = check.choice(where + '.cache', value.get('cache', 'prefer'), CACHE_POLICIES) or 'prefer'
    if 'cpus' not in value:
        check.error(where, 'has no cpus (a number of whole cores, a share such as "25%" or "rest")')
        part['cpus'] = None
    else:
        part['cpus'] = _cpus(check, where + '.cpus', value['cpus'], node, part['placement'])
    if 'memory' not in value:
        check.error(where, 'has no memory (a size such as 4G, or a share of its node\'s memory such as "25%")')
        part['memory'] = None
    else:
        part['memory'] = _memory(check, where + '.memory', value['memory'])
    devices = value.get('devices', [])
    part['devices'] = []
    if not isinstance(devices, list):
        check.error(where + '.devices', 'expected a list of device requests, got %s' % _type_name(devices))
    else:
        for number, spec in enumerate(devices):
            request = _device(check, '%s.devices[%d]' % (where, number), spec)
            if request is not None:
                part['devices'].append(request)
    part['network'] = None
    if value.get('network') is not None:
        part['network'] = _network(check, where + '.network', value['network'], pools)
    part['extra'] = []
    for key in PASSTHROUGH:
        if key in value:
            part['extra'].append((key, _passthrough(check, '%s.%s' % (where, key), value[key], key)))
    return part


def _scope_checks(check, partitions):
    """Shares of one scope that add up to more than all of it, and more than one rest per scope."""
    shares, rests = {}, {}
    for part in partitions:
        if not part['cpus'] or not part['name']:
            continue
        scope = ('node %d' % part['node']) if part['node'] is not None else 'the host'
        if part['cpus'][0] == 'share':
            shares.setdefault(scope, []).append(part)
        elif part['cpus'][0] == 'rest':
            rests.setdefault(scope, []).append(part['name'])
    for scope in sorted(shares):
        total = sum(p['cpus'][1] for p in shares[scope])
        if total > 1:
            check.error('partitions', 'the CPU shares of %s add up to %s, over 100%% (%s)'
                        % (scope, format_share(total),
                           ', '.join('%s %s' % (p['name'], format_share(p['cpus'][1])) for p in shares[scope])))
    for scope in sorted(rests):
        if len(rests[scope]) > 1:
            check.error('partitions', '%s ask for the rest of %s; only one can' % (' and '.join(rests[scope]), scope))
    if 'the host' in rests and len(rests) > 1:
        check.error('partitions', '%s takes the rest of the host, so no other partition can take the rest of a node'
                    % rests['the host'][0])


def validate(intent):
    """Check an intent and return its normalised form (a dict the planner reads); raise IntentError."""
    check = _Checker()
    if not check.keys('', intent, TOP_KEYS):
        raise IntentError(check.errors)
    if 'version' in intent and intent['version'] != 1:
        check.error('version', 'only version 1 exists, got %s' % _type_name(intent['version']))
    normal = {'hardware_class': None, 'memory_pool': 'free', 'memory_unit': DEFAULT_UNIT}
    if intent.get('hardware_class') is not None:
        normal['hardware_class'] = check.text('hardware_class', intent['hardware_class'],
                                              re.compile(r'^hw-[0-9a-f]{6,64}$'),
                                              ' (expected an id from hardware_fingerprint, such as hw-3f2a9c1b04d2)')
    housekeeping = intent.get('housekeeping', {})
    normal['housekeeping'] = {'per': 'node', 'cores': 1, 'memory': 0}
    if check.keys('housekeeping', housekeeping, HOUSEKEEPING_KEYS):
        if 'cores_per_node' in housekeeping and 'cores_per_socket' in housekeeping:
            check.error('housekeeping', 'give cores_per_node or cores_per_socket, not both')
        for key, per in (('cores_per_node', 'node'), ('cores_per_socket', 'socket')):
            if key in housekeeping:
                cores = check.integer('housekeeping.' + key, housekeeping[key], minimum=0)
                normal['housekeeping'].update(per=per, cores=cores if cores is not None else 1)
        if 'memory_per_node' in housekeeping:
            normal['housekeeping']['memory'] = check.size('housekeeping.memory_per_node',
                                                          housekeeping['memory_per_node'], allow_zero=True) or 0
    if 'memory_unit' in intent:
        unit = intent['memory_unit']
        if unit == 'block':
            normal['memory_unit'] = 'block'
        else:
            normal['memory_unit'] = check.size('memory_unit', unit) or DEFAULT_UNIT
    if 'memory_pool' in intent:
        normal['memory_pool'] = check.choice('memory_pool', intent['memory_pool'], MEMORY_POOLS) or 'free'
    pools = _pools(check, intent.get('address_pools'))
    normal['pools'] = pools
    partitions = intent.get('partitions')
    normal['partitions'] = []
    if not isinstance(partitions, list):
        check.error('partitions', 'expected a list of partitions, got %s' % _type_name(partitions))
    else:
        for index, spec in enumerate(partitions):
            part = _partition(check, index, spec, pools)
            if part is not None:
                normal['partitions'].append(part)
        names = [p['name'] for p in normal['partitions'] if p['name']]
        for name in sorted(set(n for n in names if names.count(n) > 1)):
            check.error('partitions', 'the name %s is used %d times' % (name, names.count(name)))
        _scope_checks(check, normal['partitions'])
    if check.errors:
        raise IntentError(check.errors)
    normal['key'] = canonical(intent)
    normal['digest'] = hashlib.sha256(normal['key'].encode('utf-8')).hexdigest()[:12]
    normal['names'] = frozenset(p['name'] for p in normal['partitions'])
    return normal


def _plain(value):
    """Ansible's tagged and unsafe strings, tuples and sets as plain JSON types, for canonical dumps."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def canonical(value):
    """A deterministic JSON text of any intent-like value (sorted keys, no spaces)."""
    try:
        # Ansible's tagged strings and dicts are str and dict subclasses: the C encoder takes them as they are.
        return json.dumps(value, sort_keys=True, separators=(',', ':'))
    except (TypeError, ValueError):
        return json.dumps(_plain(value), sort_keys=True, separators=(',', ':'))


_CACHE = {}
_CACHE_LIMIT = 64


def validated(intent):
    """``validate`` with a small cache keyed by the intent's canonical text: one group's hosts share one intent."""
    if isinstance(intent, dict) and 'partitions' in intent and 'digest' in intent and 'names' in intent:
        return intent   # already normalised
    key = canonical(intent)
    found = _CACHE.get(key)
    if found is None:
        found = validate(intent)
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = found
    return found


def validate_identity(identity):
    """A host's identity: {name, index, networks: {partition: {address, gateway, hostname, iface}}} -> normalised."""
    check = _Checker()
    if identity is None:
        identity = {}
    if isinstance(identity, str):
        identity = {'name': identity}
    normal = {'name': None, 'index': None, 'networks': {}}
    if check.keys('host_identity', identity, ('name', 'index', 'networks')):
        if identity.get('name') is not None:
            normal['name'] = check.text('host_identity.name', identity['name'],
                                        re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'), ' (expected a host name)')
        if identity.get('index') is not None:
            normal['index'] = check.integer('host_identity.index', identity['index'], minimum=0, maximum=1 << 24)
        networks = identity.get('networks') or {}
        if not isinstance(networks, dict):
            check.error('host_identity.networks', 'expected a mapping of partition names, got %s'
                        % _type_name(networks))
        else:
            for name in sorted(networks, key=str):
                where = 'host_identity.networks.%s' % name
                spec = networks[name]
                if not isinstance(spec, dict):
                    check.error(where, 'expected a mapping, got %s' % _type_name(spec))
                    continue
                check.keys(where, spec, ('address', 'gateway', 'hostname', 'iface'))
                entry = {}
                for key in ('address', 'gateway', 'hostname', 'iface'):
                    if spec.get(key) is not None:
                        entry[key] = check.text('%s.%s' % (where, key), spec[key], _TOKEN_TEXT)
                if 'address' in entry and entry['address'] and HAS_NETADDR:
                    try:
                        net = netaddr.IPNetwork(entry['address'])
                        if net.version != 4 or '/' not in entry['address']:
                            check.error(where + '.address', '%r: expected an IPv4 address with its prefix, such as '
                                        '192.0.2.11/24' % entry['address'])
                    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
                        check.error(where + '.address', '%r is not an address: %s' % (entry['address'], exc))
                normal['networks'][str(name)] = entry
    if check.errors:
        raise IntentError(check.errors, 'host identity')
    return normal
