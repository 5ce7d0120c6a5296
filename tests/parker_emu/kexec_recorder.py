"""kexec, observed: runs the real kexec-tools, then records what the normal slot holds.

Installed in the fleet guests behind /sbin/kexec (dpkg-divert keeps the real one
as /sbin/kexec.distrib). The load itself is real: the image goes into the kernel's
kexec slot. A stock kernel cannot show a loaded image, so the Parker emulation reads
this record to know what the partition BSP would boot (instance.check_boot).
"""

import json
import os
import subprocess
import sys

REAL_KEXEC = os.environ.get('PARKER_EMU_REAL_KEXEC', '/sbin/kexec.distrib')
RECORD = os.environ.get('PARKER_EMU_KEXEC_RECORD', '/run/parker-emu/kexec-slot.json')

try:
    from instance import parse_kexec_argv
except ImportError:  # pragma: no cover - imported from the test tree
    from .instance import parse_kexec_argv


def record(action, slot):
    if action == 'load':
        os.makedirs(os.path.dirname(RECORD), exist_ok=True)
        tmp = RECORD + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            json.dump(slot, handle)
        os.replace(tmp, RECORD)
    elif action == 'unload':
        try:
            os.unlink(RECORD)
        except FileNotFoundError:
            pass


def main(argv):
    status = subprocess.call([REAL_KEXEC] + argv)
    if status == 0:
        action, slot = parse_kexec_argv(argv)
        record(action, slot)
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
