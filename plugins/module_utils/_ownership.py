# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""What the Boot Kernel uses each PCI device for: network and storage ownership (read-only).

``pci_facts`` lists every PCI device with the lock-out flags (SSH, default route, root
filesystem) and ``in_use``: one sentence per reason the device must not be handed to a
partition or another driver, naming the holder (a mount, swap, a device-mapper or MD
holder, a process with the device open, an address, a route, a bond). ``takeover_problems``
turns those into the refusal every module that takes a device uses.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import re
import socket
import struct

PCI_ROOT = '/sys/bus/pci/devices'
_BDF = re.compile(r'^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$')
IFF_UP = 0x1
# Address scopes (rtnetlink RT_SCOPE_*): link and host addresses do not make a NIC "in use".
SCOPE_LINK, SCOPE_HOST = 253, 254


def _bdf_in_path(path):
    """The PCI function closest to a device in a /sys/devices path."""
    found = None
    for part in path.split('/'):
        if _BDF.match(part):
            found = part
    return found


# -- Routes and the SSH path ---------------------------------------------------

def _hex_ipv4(value):
    # /proc/net/route prints addresses in host byte order.
    return socket.inet_ntoa(struct.pack('=I', int(value, 16)))


def _ipv4_routes(io):
    routes = []
    for line in (io.read('/proc/net/route', '') or '').splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8:
            routes.append({'iface': fields[0], 'dest': _hex_ipv4(fields[1]),
                           'gateway': _hex_ipv4(fields[2]), 'mask': _hex_ipv4(fields[7])})
    return routes


def _ipv6_routes(io):
    routes = []
    for line in (io.read('/proc/net/ipv6_route', '') or '').splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[9] != 'lo':
            routes.append({'iface': fields[9], 'dest': fields[0], 'prefix': int(fields[1], 16)})
    return routes


def _route_iface(io, address):
    """Longest-prefix match of an address against the routing table."""
    if not address:
        return None
    address = address.split('%')[0]
    if address.startswith('::ffff:'):
        address = address[7:]
    best = (-1, None)
    if ':' not in address:
        try:
            addr = struct.unpack('!I', socket.inet_aton(address))[0]
        except (OSError, socket.error):
            return None
        for route in _ipv4_routes(io):
            mask = struct.unpack('!I', socket.inet_aton(route['mask']))[0]
            dest = struct.unpack('!I', socket.inet_aton(route['dest']))[0]
            bits = bin(mask).count('1')
            if addr & mask == dest & mask and bits > best[0]:
                best = (bits, route['iface'])
    else:
        try:
            addr = int(binascii.hexlify(socket.inet_pton(socket.AF_INET6, address)), 16)
        except (OSError, socket.error, ValueError, AttributeError):
            return None
        for route in _ipv6_routes(io):
            prefix = route['prefix']
            dest = int(route['dest'], 16)
            if prefix > best[0] and (prefix == 0 or (addr >> (128 - prefix)) == (dest >> (128 - prefix))):
                best = (prefix, route['iface'])
    return best[1]


def _ssh_server_address(io):
    """Local address of the SSH session that runs us: SSH_CONNECTION, else port 22 sockets."""
    conn = io.environ.get('SSH_CONNECTION', '')
    parts = conn.split()
    if len(parts) == 4:
        return parts[2], 'SSH_CONNECTION'
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in (io.read(table, '') or '').splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == '01':   # ESTABLISHED
                local_hex, local_port = fields[1].split(':')
                if int(local_port, 16) == 22 and len(local_hex) == 8:
                    return _hex_ipv4(local_hex), table
    return None, None


def _carriers(io, iface, seen=None):
    """An interface and every interface below it: bond slaves, VLAN and macvlan lowers, bridge ports."""
    seen = set() if seen is None else seen
    if not iface or iface in seen:
        return seen
    seen.add(iface)
    base = '/sys/class/net/' + iface
    lowers = [n[6:] for n in io.listdir(base) if n.startswith('lower_')] + io.listdir(base + '/brif')
    for lower in lowers:
        _carriers(io, lower, seen)
    return seen


def _stacked(io, iface, seen=None):
    """An interface and every interface stacked on it: VLANs, macvlans, its bond, bridge or team master."""
    seen = [] if seen is None else seen
    if iface in seen:
        return seen
    seen.append(iface)
    base = '/sys/class/net/' + iface
    uppers = [n[6:] for n in io.listdir(base) if n.startswith('upper_')]
    master = io.link_name(base + '/master')
    for upper in uppers + ([master] if master else []):
        _stacked(io, upper, seen)
    return seen


# -- Storage: mounts, swap, holders, open files --------------------------------

def unescape_mount_field(text):
    """mountinfo and /proc/swaps write space, tab, newline and backslash as octal escapes."""
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), text)


def _mounts_by_device(io):
    """{block device name: [mount points]} from mountinfo, by major:minor and by source."""
    by_majmin, by_name = {}, {}
    for line in (io.read('/proc/self/mountinfo', '') or '').splitlines():
        fields = line.split()
        if len(fields) < 5 or '-' not in fields:
            continue
        point = unescape_mount_field(fields[4])
        by_majmin.setdefault(fields[2], []).append(point)
        tail = fields[fields.index('-') + 1:]
        # btrfs and friends show an anonymous 0:N; their source names the device.
        if len(tail) >= 2 and tail[1].startswith('/dev/'):
            name = io.realpath(tail[1]).rsplit('/', 1)[-1]
            by_name.setdefault(name, []).append(point)
    return by_majmin, by_name


def _swap_devices(io):
    names = set()
    for line in (io.read('/proc/swaps', '') or '').splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[1] == 'partition':
            names.add(io.realpath(unescape_mount_field(fields[0])).rsplit('/', 1)[-1])
    return names


def _holder_label(io, name):
    """'LVM volume vg0-lv0', 'MD array md0 (raid1, clean)', ... for a holder block device."""
    base = '/sys/class/block/' + name
    dm_name = io.read(base + '/dm/name')
    if dm_name is not None:
        uuid = io.read(base + '/dm/uuid') or ''
        kind = next((label for prefix, label in (('LVM-', 'LVM volume'), ('CRYPT-', 'dm-crypt volume'),
                                                 ('mpath-', 'multipath device'), ('part', 'partition mapping'))
                     if uuid.startswith(prefix)), 'device-mapper device')
        return '%s %s' % (kind, dm_name)
    level = io.read(base + '/md/level')
    if level is not None:
        return 'MD array %s (%s, %s)' % (name, level, io.read(base + '/md/array_state') or 'unknown state')
    return name


class _Storage(object):
    """The block layer's view, read once per pci_facts call."""

    def __init__(self, io, opens):
        self.io = io
        self.mounts_majmin, self.mounts_name = _mounts_by_device(io)
        self.swaps = _swap_devices(io)
        self.opens = opens

    def node_reasons(self, name, seen=None, probe=True):
        """Why block device ``name`` (a disk, a partition or a holder above them) is in use."""
        seen = set() if seen is None else seen
        if name in seen:
            return []
        seen.add(name)
        io, base = self.io, '/sys/class/block/' + name
        majmin = io.read(base + '/dev')
        reasons = []
        points = self.mounts_majmin.get(majmin, []) + [p for p in self.mounts_name.get(name, [])
                                                       if p not in self.mounts_majmin.get(majmin, [])]
        points = sorted(set(points))
        if points:
            # Container runtimes bind-mount one device many times: name a few.
            shown = ', '.join(points[:3]) + (' and %d more' % (len(points) - 3) if len(points) > 3 else '')
            reasons.append('/dev/%s is mounted at %s' % (name, shown))
        if name in self.swaps:
            reasons.append('/dev/%s is active swap' % name)
        for pid, comm in self.opens.get('b:%s' % majmin, []) + self.opens.get(name, []):
            reasons.append('/dev/%s is open by pid %d (%s)' % (name, pid, comm))
        for holder in io.listdir(base + '/holders'):
            label = _holder_label(io, holder)
            above = self.node_reasons(holder, seen)
            reasons.append('/dev/%s is held by %s%s' % (name, label, ', where ' + '; '.join(above) if above else ''))
        if not reasons and probe and io.exclusive_open_busy('/dev/' + name):
            reasons.append('/dev/%s is busy: an exclusive open fails with EBUSY (a kernel user holds it)' % name)
        return reasons

    def disk_reasons(self, disk):
        """Each partition of the disk, then the disk itself; the whole disk's exclusive-open probe runs only
        when no partition explains its use (a mounted partition makes it busy too)."""
        parts = [n for n in self.io.listdir('/sys/block/' + disk)
                 if n.startswith(disk) and self.io.exists('/sys/block/%s/%s/partition' % (disk, n))]
        reasons = []
        for name in parts:
            reasons.extend(self.node_reasons(name))
        return self.node_reasons(disk, probe=not reasons) + reasons


def _open_devices(io):
    """{major:minor or node name: [(pid, comm)]} of device nodes processes hold open."""
    opens = {}
    for pid, comm, key in io.open_device_files():
        entry = (pid, comm)
        if entry not in opens.setdefault(key, []):
            opens[key].append(entry)
    return opens


# -- Network: addresses, routes, masters ---------------------------------------

def _addresses_by_iface(io):
    """{iface: ['addr/prefix']} without link and host scope; None when the kernel's addresses cannot be read."""
    names = dict((io.read('/sys/class/net/%s/ifindex' % n), n) for n in io.listdir('/sys/class/net'))
    by_iface = {}
    addresses = io.interface_addresses()
    if addresses is None:
        return None
    for addr in addresses:
        if addr['scope'] in (SCOPE_LINK, SCOPE_HOST):
            continue
        name = names.get(str(addr['index']))
        if name:
            by_iface.setdefault(name, []).append('%s/%d' % (addr['address'], addr['prefix']))
    return by_iface


def _routes_by_iface(io):
    routes = {}
    for route in _ipv4_routes(io):
        bits = bin(struct.unpack('!I', socket.inet_aton(route['mask']))[0]).count('1')
        routes.setdefault(route['iface'], []).append('%s/%d' % (route['dest'], bits))
    for route in _ipv6_routes(io):
        dest = route['dest']
        # Link-local and multicast routes come with every IPv6 interface that is up.
        if dest.startswith('fe80') or dest.startswith('ff'):
            continue
        text = ':'.join(dest[i:i + 4] for i in range(0, 32, 4))
        routes.setdefault(route['iface'], []).append('%s/%d' % (text, route['prefix']))
    return routes


def _nic_reasons(io, iface, addresses, routes):
    reasons = []
    master = io.link_name('/sys/class/net/%s/master' % iface)
    if master:
        reasons.append('%s is enslaved to %s' % (iface, master))
    for dev in _stacked(io, iface):
        flags = io.read_int('/sys/class/net/%s/flags' % dev, default=0, base=16)
        via = '' if dev == iface else ' (stacked on %s)' % iface
        if flags & IFF_UP and addresses is None:
            reasons.append('%s%s is up and its addresses could not be read (rtnetlink failed)' % (dev, via))
        elif flags & IFF_UP and addresses.get(dev):
            reasons.append('%s%s is up with address %s' % (dev, via, ', '.join(addresses[dev])))
        if routes.get(dev):
            reasons.append('%s%s carries routes to %s' % (dev, via, ', '.join(sorted(set(routes[dev])))))
    return reasons


# -- PCI devices ------------------------------------------------------------------

def _root_block_devices(io):
    """Block devices under / and /boot, following device-mapper and md slaves."""
    wanted = {}
    for line in (io.read('/proc/self/mountinfo', '') or '').splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in ('/', '/boot', '/boot/efi'):
            wanted[fields[4]] = fields[2]
    devices = set()
    pending = ['/sys/dev/block/%s' % majmin for majmin in wanted.values()]
    seen = set()
    while pending:
        rel = pending.pop()
        real = io.realpath(rel)
        if real in seen:
            continue
        seen.add(real)
        devices.add(real)
        for slave in io.listdir(real + '/slaves'):
            pending.append(real + '/slaves/' + slave)
        # A partition's parent disk holds the controller link.
        if io.exists(real + '/partition'):
            devices.add(real.rsplit('/', 1)[0])
    return devices


def _char_opens_by_bdf(io, opens):
    """Character devices of a PCI device held open (a DRM card with clients, a UIO or misc node)."""
    found = {}
    for key, users in opens.items():
        if not key.startswith('c:'):
            continue
        real = io.realpath('/sys/dev/char/' + key[2:])
        bdf = _bdf_in_path(real) if real.startswith('/sys/devices/') else None
        if bdf:
            node = real.rsplit('/', 1)[-1]
            for pid, comm in users:
                found.setdefault(bdf, []).append('/dev/%s is open by pid %d (%s)' % (node, pid, comm))
    return found


def pci_facts(io):
    default_ifaces = set(r['iface'] for r in _ipv4_routes(io) if r['dest'] == '0.0.0.0' and r['mask'] == '0.0.0.0')
    default_ifaces |= set(r['iface'] for r in _ipv6_routes(io) if r['prefix'] == 0 and int(r['dest'], 16) == 0)
    ssh_address, ssh_source = _ssh_server_address(io)
    ssh_iface = _route_iface(io, ssh_address)

    net_of, block_of = {}, {}
    for iface in io.listdir('/sys/class/net'):
        bdf = _bdf_in_path(io.realpath('/sys/class/net/' + iface))
        if bdf:
            net_of.setdefault(bdf, []).append(iface)
    for disk in io.listdir('/sys/block'):
        bdf = _bdf_in_path(io.realpath('/sys/block/' + disk))
        if bdf:
            block_of.setdefault(bdf, []).append(disk)
    ssh_carriers = _carriers(io, ssh_iface)
    route_carriers = set()
    for iface in default_ifaces:
        _carriers(io, iface, route_carriers)
    root_paths = _root_block_devices(io)
    root_bdfs = set(filter(None, (_bdf_in_path(p) for p in root_paths)))

    opens = _open_devices(io)
    storage = _Storage(io, opens)
    char_opens = _char_opens_by_bdf(io, opens)
    addresses, routes = _addresses_by_iface(io), _routes_by_iface(io)

    devices = []
    for bdf in io.listdir(PCI_ROOT):
        base = PCI_ROOT + '/' + bdf
        override = io.read(base + '/driver_override')
        nets = net_of.get(bdf, [])
        disks = block_of.get(bdf, [])
        in_use = []
        for disk in disks:
            in_use.extend(storage.disk_reasons(disk))
        for iface in nets:
            in_use.extend(_nic_reasons(io, iface, addresses, routes))
        in_use.extend(char_opens.get(bdf, []))
        devices.append({
            'address': bdf,
            'vendor': (io.read(base + '/vendor') or '')[2:],
            'device': (io.read(base + '/device') or '')[2:],
            'class': io.read(base + '/class'),
            'driver': io.link_name(base + '/driver'),
            'driver_override': None if override in (None, '(null)', '') else override,
            'numa_node': io.read_int(base + '/numa_node'),
            'iommu_group': io.link_name(base + '/iommu_group'),
            # An SR-IOV virtual function comes and goes with its physical function's driver.
            'sriov_vf': io.exists(base + '/physfn'),
            'net': nets,
            'block': disks,
            'default_route': bool(route_carriers.intersection(nets)),
            'ssh': bool(ssh_carriers.intersection(nets)),
            'root_fs': bdf in root_bdfs,
            'in_use': in_use,
        })
    return {
        'devices': devices,
        'ssh_interface': ssh_iface,
        'ssh_address_source': ssh_source,
        'default_route_interfaces': sorted(default_ifaces),
    }


LOCKOUT = (('ssh', 'carries the SSH connection Ansible uses'),
           ('default_route', 'carries the default route'),
           ('root_fs', 'holds the root filesystem'))


def device_label(dev):
    return '%s (%s)' % (dev['address'], ','.join(dev['net'] + dev['block']) or dev['class'] or 'no driver')


def takeover_problems(dev, force):
    """Why taking ``dev`` from the Boot Kernel (a partition's bind, or another driver) would cut the host off
    or lose data, one sentence each; ``force`` overrides them all."""
    if force:
        return []
    label = device_label(dev)
    problems = ['%s %s; taking it cuts this host off (force=true overrides)' % (label, what)
                for flag, what in LOCKOUT if dev[flag]]
    problems.extend('%s: %s; taking it from the Boot Kernel would break that user (force=true overrides)'
                    % (label, reason) for reason in dev.get('in_use') or [])
    return problems
