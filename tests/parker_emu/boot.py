"""The emulated Parker Boot Kernel's boot, its CMA views, and mount.parker.

Usage (in a guest, as root; deploy.yml installs the pieces):
  python3 boot.py boot   [--config FILE]   # once per guest boot: lay out the CMA areas, log, views
  python3 boot.py reboot [--config FILE]   # a new emulated boot with a changed config (refused while mounted)
  python3 boot.py mount  none ROOT [-o OPTS]   # what /sbin/mount.parker runs (mount -t parker none ROOT)
  python3 boot.py umount [--config FILE]   # umount ROOT and wait for the daemon to exit (deploy.yml)

A real Boot Kernel lays out its Parker CMA areas in setup_arch(), long before
anything mounts /sys/fs/parker. The emulation does the same at its "boot" (the
parker-emu-boot service at guest boot, deploy.yml, or the first mount, whichever
comes first): it computes the layout from its config (model.cma_layout()), writes
the kernel's log lines to /dev/kmsg, and shows the areas where a kernel with
CONFIG_CMA_SYSFS and CONFIG_CMA_DEBUGFS would (contract section 1):

* /sys/kernel/mm/cma/parker<nid>/{alloc_pages_success,alloc_pages_fail,release_pages_success}
  on a tmpfs mounted over /sys/kernel/mm/cma;
* /sys/kernel/debug/cma/parker<nid>/{base_pfn,count,used,order_per_bit} on a tmpfs over
  /sys/kernel/debug/cma, when debugfs is mounted.

Debian's 6.1 kernel has CONFIG_CMA off, so neither cma/ directory exists, and
sysfs and debugfs refuse mkdir. Where one is missing, its parent is shimmed: the
real parent is bind-mounted (private) under /run/parker-emu/real/, a tmpfs
(source "parker-emu") goes over the parent, and every real entry is bind-mounted
back at its place, so /sys/kernel/mm/transparent_hugepage/enabled or
/sys/kernel/debug/tracing still work. Entries the kernel adds later (a module's
debugfs directory) do not appear under the shim. The daemon (parkerfs.py) keeps
the counter files current. What it cannot show: /proc/meminfo CmaTotal/CmaFree
(0 on this kernel), and the lines' facility: /dev/kmsg records written from user
space carry facility user (priority 14 or 12 in /dev/kmsg, ``user`` in dmesg -x),
never kern; the text is the kernel's. A config change without a guest reboot
(boot.py reboot) logs a second set of lines after the first.

Files: config /etc/parker-emu/config.json (written by deploy.yml); boot record
/run/parker-emu/boot.json (boot_id, layout, lines); the kernfs state
/run/parker-emu/kernfs.json (partitions, area units, host effects to undo), which
a later mount reattaches, as the kernel keeps partitions across an unmount.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

try:
    from .model import cma_layout, parse_cpulist, GIB
except ImportError:
    from model import cma_layout, parse_cpulist, GIB

CONFIG = '/etc/parker-emu/config.json'
DEFAULTS = {
    'root': '/run/parker',
    'parker_cma': '4G',
    'cma_failed_nodes': [],
    'boot_delay': 2.0,
    'online_cap': 600.0,
    'state_dir': '/run/parker-emu',
    'kexec_record': '/run/parker-emu/kexec-slot.json',
    'log': '/run/parker-emu/instances.log',
    'debugfs': True,
    'sysroot': '/',
}
SYSFS_CMA = '/sys/kernel/mm/cma'
DEBUGFS_CMA = '/sys/kernel/debug/cma'
TMPFS_SOURCE = 'parker-emu'
KMSG = '/dev/kmsg'


def load_config(path=CONFIG):
    config = dict(DEFAULTS)
    try:
        with open(path, encoding='utf-8') as handle:
            config.update(json.load(handle))
    except FileNotFoundError:
        pass
    return config


def layout_key(config):
    return hashlib.sha256(json.dumps([str(config['parker_cma']), sorted(config['cma_failed_nodes'])]).encode()).hexdigest()[:16]


def boot_id(sysroot='/'):
    try:
        with open(os.path.join(sysroot, 'proc/sys/kernel/random/boot_id'), encoding='ascii') as handle:
            return handle.read().strip()
    except OSError:
        return 'unknown'


def online_nodes(sysroot='/'):
    try:
        with open(os.path.join(sysroot, 'sys/devices/system/node/online'), encoding='ascii') as handle:
            return sorted(parse_cpulist(handle.read(), 1 << 16))
    except OSError:
        return [0]


def area_bases(sysroot, nodes):
    """Synthetic 1 GiB-aligned bases above the host's memory blocks, in node order (the guests have no free GiB)."""
    top = 4 * GIB
    memory = os.path.join(sysroot, 'sys/devices/system/memory')
    try:
        with open(os.path.join(memory, 'block_size_bytes'), encoding='ascii') as handle:
            block = int(handle.read().strip(), 16)
        ids = [int(n[6:]) for n in os.listdir(memory) if n.startswith('memory') and n[6:].isdigit()]
        top = max(top, (max(ids) + 1) * block)
    except (OSError, ValueError):
        pass
    return -(-top // GIB) * GIB


def compute_boot(config):
    sysroot = config['sysroot']
    nodes = online_nodes(sysroot)
    areas, lines, failed = cma_layout(config['parker_cma'], nodes, config['cma_failed_nodes'],
                                      start=area_bases(sysroot, nodes))
    return {'boot_id': boot_id(sysroot), 'layout': layout_key(config), 'nodes': nodes,
            'areas': dict((str(n), list(a)) for n, a in areas.items()), 'failed': failed, 'lines': lines,
            'registered': bool(areas), 'time': time.time()}


def kmsg(lines, path=None):
    with open(path or KMSG, 'w', encoding='utf-8') as handle:
        for line in lines:
            level = 3 if 'Failed' in line or 'failed' in line else (4 if 'dropped' in line or line.startswith('No ') else 6)
            handle.write('<%d>%s\n' % (8 + level, line))  # facility user: /dev/kmsg refuses kern (0) from user space
            handle.flush()


# -- mounts -------------------------------------------------------------------------------------
def mountinfo():
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        rows = []
        for line in handle:
            fields = line.split()
            sep = fields.index('-')
            rows.append({'target': fields[4].replace('\\040', ' '), 'fstype': fields[sep + 1], 'source': fields[sep + 2]})
        return rows


def top_mount(path):
    rows = [row for row in mountinfo() if row['target'] == path]
    return rows[-1] if rows else None


def run(argv):
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def shim(parent, hidden):
    """Make parent writable for new entries: a tmpfs over it with every real entry bind-mounted back."""
    top = top_mount(parent)
    if top and top['source'] == TMPFS_SOURCE:
        return
    os.makedirs(hidden, exist_ok=True)
    run(['mount', '--bind', parent, hidden])
    run(['mount', '--make-private', hidden])
    run(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', TMPFS_SOURCE, parent])
    for name in sorted(os.listdir(hidden)):
        real, here = os.path.join(hidden, name), os.path.join(parent, name)
        if os.path.islink(real):
            os.symlink(os.readlink(real), here)
            continue
        if os.path.isdir(real):
            os.mkdir(here)
        else:
            open(here, 'w', encoding='ascii').close()  # pylint: disable=consider-using-with
        try:
            run(['mount', '--bind', real, here])
        except subprocess.CalledProcessError:
            pass


def cma_dir(path, hidden):
    """A tmpfs at path (.../cma) that this emulation owns, emptied; creates path through a shim if needed."""
    top = top_mount(path)
    if top and top['source'] == TMPFS_SOURCE:
        for name in os.listdir(path):
            sub = os.path.join(path, name)
            for leaf in os.listdir(sub):
                os.remove(os.path.join(sub, leaf))
            os.rmdir(sub)
        return
    if not os.path.isdir(path):
        shim(os.path.dirname(path), hidden)
        os.mkdir(path)
    run(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', TMPFS_SOURCE, path])


class Views:
    """Writes the CMA files a kernel shows; model.CmaAreas.on_change calls update()."""

    def __init__(self, sysfs=SYSFS_CMA, debugfs=DEBUGFS_CMA):
        self.sysfs = sysfs
        self.debugfs = debugfs

    def update(self, area):
        view = area.view()
        for top, files in ((self.sysfs, view['sysfs']), (self.debugfs, view['debugfs'])):
            if not top or not os.path.isdir(top):
                continue
            where = os.path.join(top, area.name)
            os.makedirs(where, exist_ok=True)
            for name, value in files.items():
                with open(os.path.join(where, name), 'w', encoding='ascii') as handle:
                    handle.write('%d\n' % value)


def setup_views(config, record):
    state_dir = config['state_dir']
    done = {'sysfs': None, 'debugfs': None, 'errors': []}
    try:
        cma_dir(SYSFS_CMA, os.path.join(state_dir, 'real', 'sys-kernel-mm'))
        done['sysfs'] = SYSFS_CMA
    except (OSError, subprocess.SubprocessError) as exc:
        done['errors'].append('sysfs: %s' % exc)
    debug = top_mount('/sys/kernel/debug')
    if config['debugfs'] and debug:
        try:
            cma_dir(DEBUGFS_CMA, os.path.join(state_dir, 'real', 'sys-kernel-debug'))
            done['debugfs'] = DEBUGFS_CMA
        except (OSError, subprocess.SubprocessError) as exc:
            done['errors'].append('debugfs: %s' % exc)
    return done


def write_views(views, areas):
    for area in areas.areas.values():
        views.update(area)


# -- boot ---------------------------------------------------------------------------------------
def read_json(path):
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def boot_path(config):
    return os.path.join(config['state_dir'], 'boot.json')


def kernfs_path(config):
    return os.path.join(config['state_dir'], 'kernfs.json')


def booted(config):
    record = read_json(boot_path(config))
    if record and record.get('boot_id') == boot_id(config['sysroot']):
        return record
    return None


def boot(config, force=False):
    """Once per (guest) boot, or again with force: the layout, the log lines and the views."""
    record = booted(config)
    if record and not force:
        return record
    # local import: model's CmaAreas with fresh counters
    try:
        from .model import CmaAreas  # pylint: disable=import-outside-toplevel
    except ImportError:
        from model import CmaAreas  # pylint: disable=import-outside-toplevel
    record = compute_boot(config)
    try:
        os.unlink(kernfs_path(config))  # a new boot holds no partitions
    except FileNotFoundError:
        pass
    kmsg(record['lines'])
    record['views'] = setup_views(config, record)
    areas = CmaAreas(dict((int(n), tuple(a)) for n, a in record['areas'].items()))
    write_views(Views(record['views']['sysfs'], record['views']['debugfs']), areas)
    if record['registered']:
        os.makedirs(config['root'], exist_ok=True)  # sysfs_create_mount_point(): an empty directory
    write_json(boot_path(config), record)
    return record


def is_mounted(path):
    return any(row['target'] == path for row in mountinfo())


def unit_name(root):
    escaped = subprocess.run(['systemd-escape', '--path', root], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout.strip()
    return 'parker-emu@%s.service' % escaped


def unit_active(unit):
    return subprocess.run(['systemctl', 'is-active', '--quiet', unit], check=False).returncode == 0


def mount(config, root, timeout=60.0):
    """mount -t parker none ROOT: (exit status, message). 32 is mount(8)'s "mount failure"."""
    root = os.path.abspath(root)
    if root != os.path.abspath(config['root']):
        return 32, 'mount.parker: the emulated parker kernfs is %s, not %s' % (config['root'], root)
    record = boot(config)
    if not record['registered']:
        return 32, "mount: %s: unknown filesystem type 'parker' (No parker CMA regions allocated, disabling parker.)" % root
    if is_mounted(root):
        return 32, 'mount: %s: none already mounted or mount point busy (EBUSY: one parker mount at a time)' % root
    if not os.path.isdir(root):
        return 32, 'mount: %s: mount point does not exist' % root
    unit = unit_name(root)
    deadline = time.time() + timeout
    while unit_active(unit):  # the previous daemon is still exiting after an umount
        if time.time() > deadline:
            return 32, 'mount.parker: %s is still running without a mount' % unit
        time.sleep(0.2)
    subprocess.run(['systemctl', 'reset-failed', unit], check=False, stderr=subprocess.DEVNULL)
    subprocess.run(['systemctl', 'start', unit], check=True)
    while not is_mounted(root):
        if time.time() > deadline or not unit_active(unit):
            log = subprocess.run(['journalctl', '-u', unit, '-n', '20', '--no-pager'], check=False,
                                 stdout=subprocess.PIPE, universal_newlines=True).stdout
            return 32, 'mount.parker: the FUSE daemon did not mount %s:\n%s' % (root, log)
        time.sleep(0.1)
    return 0, ''


def unmount(config, timeout=60.0):
    """umount ROOT, then wait until the daemon has saved its state and exited."""
    root = os.path.abspath(config['root'])
    if is_mounted(root):
        subprocess.run(['umount', root], check=True)
    unit, deadline = unit_name(root), time.time() + timeout
    while unit_active(unit):
        if time.time() > deadline:
            return 1
        time.sleep(0.2)
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = CONFIG
    if '--config' in argv:
        index = argv.index('--config')
        config_path = argv[index + 1]
        del argv[index:index + 2]
    config = load_config(config_path)
    if not argv:
        print(__doc__)
        return 2
    if argv[0] == 'boot':
        new = booted(config) is None
        record = dict(boot(config), new=new)
        print(json.dumps(record, indent=1, sort_keys=True))
        return 0
    if argv[0] == 'reboot':
        if is_mounted(os.path.abspath(config['root'])):
            print('boot.py: %s is mounted: umount it first' % config['root'], file=sys.stderr)
            return 1
        record = dict(boot(config, force=True), new=True)
        print(json.dumps(record, indent=1, sort_keys=True))
        return 0
    if argv[0] == 'umount':
        return unmount(config)
    if argv[0] == 'mount':
        # mount(8) runs: mount.parker SPEC DIR [-sfnv] [-o OPTIONS] [-t TYPE]; skip option values
        cleaned, skip = [], False
        for arg in argv[1:]:
            if skip:
                skip = False
                continue
            if arg in ('-o', '-t', '-N'):
                skip = True
                continue
            if not arg.startswith('-'):
                cleaned.append(arg)
        args = cleaned
        if len(args) < 2:
            print('usage: mount.parker none DIR', file=sys.stderr)
            return 1
        status, message = mount(config, args[1])
        if message:
            print(message, file=sys.stderr)
        return status
    print('boot.py: unknown command %r' % argv[0], file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
