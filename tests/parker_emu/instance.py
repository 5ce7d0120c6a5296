"""The emulated Application Kernel: what machine_kexec() would boot, judged, and its network.

A stock kernel cannot read a loaded kexec image back, so the guest's kexec binary is
wrapped by kexec_recorder.py: the real kexec-tools still loads the image into the real
kexec slot (/sys/kernel/kexec_loaded reads 1), and the recorder writes down what was
loaded. When a partition starts, the instance simulator reads that record and boots
it the way Parker's partition BSP would, with the checks a real boot would fail on:

* the image must be a normal (not crash) load, or Parker's machine_kexec() finds none;
* ``parker=`` must be this partition's control page, or the kernel boots as a plain
  kernel over the host's memory (or waits on another partition's page) and never sets
  ``online`` here;
* ``memmap=exactmap`` and exactly ``memmap=SIZE@BASE`` of the partition's memory, or it
  uses RAM it does not own;
* the segments must be placed inside that memory (``--mem-min``/``--mem-max``).

An image that fails any check "crashes": it never reports online, so the host's write to
``online`` times out, as it would on a real Boot Kernel.

Network: the Application Kernel drives the partition's NICs. The emulation lets the guest
kernel drive them inside a network namespace ``parker-<name>`` (the host's root namespace,
where the Boot Kernel's services live, never sees them), names them eth0, eth1... in PCI
order as a kernel without udev would, and applies the kernel ``ip=`` parameter from the
loaded command line. Traffic to that address crosses the guest's emulated wire.

Pure functions first (unit-tested), then the effects (ip(8) and sysfs, argument lists only).
"""

import json
import os
import subprocess
import time

try:
    from .model import memparse, virtio_children
except ImportError:  # deployed flat next to model.py
    from model import memparse, virtio_children

PCI_NETWORK_CLASS = '0x02'
NETNS_PREFIX = 'parker-'


# -- the kexec slot record ---------------------------------------------------------------

def parse_kexec_argv(argv):
    """What a kexec-tools command line does to the normal slot: ('load', slot), ('unload', None) or (None, None).

    Only the options that decide what boots are read; the rest pass through untouched.
    """
    action, crash, slot, positional = None, False, {}, []
    args = list(argv)
    with_value = {'--initrd': 'initrd', '--ramdisk': 'initrd', '--command-line': 'cmdline', '--append': 'cmdline',
                  '--mem-min': 'mem_min', '--mem-max': 'mem_max'}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition('=')
        if arg in ('-l', '--load'):
            action = 'load'
        elif arg in ('-u', '--unload'):
            action = 'unload'
        elif arg in ('-p', '--load-panic'):
            action, crash = 'load', True
        elif arg in ('-e', '--exec', '-f', '--force'):
            action = action or 'exec'
        elif name in with_value:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ''
            slot[with_value[name]] = value
        elif not arg.startswith('-'):
            positional.append(arg)
        i += 1
    if crash:
        return None, None  # the crash slot is not what Parker boots
    if action == 'unload':
        return 'unload', None
    if action == 'load' and positional:
        slot['kernel'] = positional[-1]
        return 'load', slot
    return None, None


def parse_ip(value):
    """The kernel's ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>..., static form only."""
    fields = value.split(':') + [''] * 7
    client, _server, gateway, netmask, hostname, device, autoconf = fields[:7]
    if value in ('dhcp', 'on', 'any', 'bootp', 'rarp', 'both', 'off', 'none') or not client:
        return None
    if autoconf not in ('', 'off', 'none'):
        return None
    prefix = 24
    if netmask:
        prefix = sum(bin(int(octet)).count('1') for octet in netmask.split('.'))
    return {'address': client, 'prefix': prefix, 'gateway': gateway or None, 'hostname': hostname or None,
            'device': device or None}


def check_boot(slot, control, memory):
    """Judge what the partition BSP would boot. Returns (problems, tokens).

    slot: the recorder's dict or None; control: the control page address; memory: (base, size) or None.
    """
    if slot is None:
        return ['the kexec slot holds no image the emulation knows (loaded without kexec-tools?)'], []
    tokens = slot.get('cmdline', '').split()
    problems = []
    parker = [t.split('=', 1)[1] for t in tokens if t.startswith('parker=')]
    if len(parker) != 1:
        problems.append('the command line has %d parker= tokens; the instance needs exactly one, its control page '
                        '0x%x' % (len(parker), control))
    else:
        try:
            if memparse(parker[0]) != control:
                problems.append('parker=%s is not this partition\'s control page 0x%x' % (parker[0], control))
        except ValueError:
            problems.append('parker=%s is not an address' % parker[0])
    if memory is None:
        problems.append('the partition has no memory: the kernel has nowhere to run')
        return problems, tokens
    base, size = memory
    memmaps = [t.split('=', 1)[1] for t in tokens if t.startswith('memmap=')]
    if 'exactmap' not in memmaps:
        problems.append('no memmap=exactmap: the instance would take the firmware memory map, the host\'s RAM')
    ranges = []
    for value in memmaps:
        if value == 'exactmap':
            continue
        amount, at, start = value.partition('@')
        try:
            ranges.append((memparse(start), memparse(amount)) if at else None)
        except ValueError:
            ranges.append(None)
    if ranges != [(base, size)]:
        problems.append('memmap= describes %s, not the partition\'s memory %d@0x%x'
                        % (', '.join(m for m in memmaps if m != 'exactmap') or 'nothing', size, base))
    try:
        low, high = memparse(slot['mem_min']), memparse(slot['mem_max'])
        if low < base or high > base + size - 1:
            problems.append('the image was placed in 0x%x-0x%x, outside the partition\'s memory 0x%x-0x%x'
                            % (low, high, base, base + size - 1))
    except (KeyError, ValueError):
        problems.append('the image was loaded without --mem-min/--mem-max: kexec-tools may place it anywhere '
                        'in the host\'s RAM')
    return problems, tokens


def network_plan(tokens, nics):
    """Names the Application Kernel gives its NICs (eth0.. in PCI order) and the ip= address, if any."""
    names = dict((bdf, 'eth%d' % index) for index, bdf in enumerate(sorted(nics)))
    ipconf = None
    for token in tokens:
        if token.startswith('ip='):
            ipconf = parse_ip(token[3:])
    if ipconf and names:
        ipconf['device'] = ipconf['device'] or names[sorted(nics)[0]]
        if ipconf['device'] not in names.values():
            ipconf = dict(ipconf, missing=True)  # IP-Config: device not found; the kernel boots on without it
    return {'names': names, 'ip': ipconf}


# -- effects ---------------------------------------------------------------------------------

class InstanceHost:
    """Host-side effects of emulated Application Kernels, under a sysfs root."""

    def __init__(self, root='/', record='/run/parker-emu/kexec-slot.json', log=None, run=None):
        self.root = root
        self.record = record
        self.log_path = log
        self.run = run or self._run

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip('/'))

    @staticmethod
    def _run(argv):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)

    def log(self, message):
        if self.log_path:
            with open(self.log_path, 'a', encoding='utf-8') as handle:
                handle.write('%s %s\n' % (time.strftime('%H:%M:%S'), message))

    def slot(self):
        try:
            with open(self.record, encoding='utf-8') as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def pci_class(self, bdf):
        try:
            with open(self.path('/sys/bus/pci/devices/%s/class' % bdf), encoding='ascii') as handle:
                return handle.read().strip()
        except OSError:
            return ''

    def nics(self, devices):
        return [bdf for bdf in devices if self.pci_class(bdf).startswith(PCI_NETWORK_CLASS)]

    def _netdev(self, bdf, deadline):
        """The interface the host driver made for bdf, once udev has finished naming it."""
        base = self.path('/sys/bus/pci/devices/' + bdf)
        while True:
            for parent in [base] + [os.path.join(base, d) for d in sorted(os.listdir(base)) if d.startswith('virtio')]:
                net = os.path.join(parent, 'net')
                if os.path.isdir(net) and os.listdir(net):
                    return sorted(os.listdir(net))[0]
            if time.time() > deadline:
                raise OSError('no network interface appeared for %s' % bdf)
            time.sleep(0.2)

    def network_up(self, name, plan):
        """Give the instance its NICs inside netns parker-<name> and apply ip=."""
        netns = NETNS_PREFIX + name
        self.run(['ip', 'netns', 'add', netns])
        self.run(['ip', '-n', netns, 'link', 'set', 'lo', 'up'])
        for bdf, ifname in sorted(plan['names'].items()):
            self.probe(bdf)
            # Let udev finish naming it first (a .link rename racing the move would fail); a busy
            # udev only delays us, so settle's own timeout is not an error.
            subprocess.run(['udevadm', 'settle', '--timeout=60'], check=False, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)
            host_name = self._netdev(bdf, time.time() + 60)
            self.run(['ip', 'link', 'set', 'dev', host_name, 'netns', netns])
            self.run(['ip', '-n', netns, 'link', 'set', 'dev', host_name, 'name', ifname])
            self.run(['ip', '-n', netns, 'link', 'set', 'dev', ifname, 'up'])
        ipconf = plan['ip']
        if ipconf and not ipconf.get('missing'):
            self.run(['ip', '-n', netns, 'addr', 'add', '%s/%d' % (ipconf['address'], ipconf['prefix']),
                      'dev', ipconf['device']])
            if ipconf['gateway']:
                self.run(['ip', '-n', netns, 'route', 'add', 'default', 'via', ipconf['gateway']])
        self.log('%s: network up in netns %s: %s, ip %s' % (name, netns, plan['names'], ipconf))

    def _write(self, rel, value):
        with open(self.path(rel), 'w', encoding='ascii') as handle:
            handle.write(value)

    def probe(self, bdf):
        """The Application Kernel's driver takes the NIC: bind the virtio child that Parker's bind left
        without a driver (the PCI function itself stays bound to virtio-pci), or the PCI device."""
        children = virtio_children(self.root, bdf)
        for child in children:
            if not os.path.lexists(self.path('/sys/bus/virtio/devices/%s/driver' % child)):
                self._write('/sys/bus/virtio/drivers_probe', child)
        if not children:
            self._write('/sys/bus/pci/drivers_probe', bdf)

    def network_down(self, name, nics):
        """The instance powered off: its NICs stop (the virtio child's driver unbound) and the namespace goes.

        The host's PCI driver (virtio-pci) is never unbound: on a real Boot Kernel that oopses (section 2.8).
        """
        for bdf in sorted(nics):
            children = virtio_children(self.root, bdf)
            for child in children:
                unbind = '/sys/bus/virtio/devices/%s/driver/unbind' % child
                if os.path.exists(self.path(unbind)):
                    self._write(unbind, child)
            if not children and os.path.exists(self.path('/sys/bus/pci/devices/%s/driver/unbind' % bdf)):
                self._write('/sys/bus/pci/devices/%s/driver/unbind' % bdf, bdf)
        netns = NETNS_PREFIX + name
        if os.path.exists('/run/netns/' + netns):
            self.run(['ip', 'netns', 'delete', netns])
        self.log('%s: network down' % name)
