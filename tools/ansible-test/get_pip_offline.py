"""Stand-in for ansible-test's get-pip bootstrap, which it downloads from a host
outside the package registries. Same contract: run as __main__ inside a fresh
venv with pip's install arguments. It installs pip from the interpreter's own
bundled wheel (ensurepip), gives the venv this machine's pip settings
(ansible-test strips the environment, so PIP_CERT and friends would be lost),
then lets that pip install the requested versions.
"""
import ensurepip
import os
import subprocess
import sys

# Filled in by scripts/ansible-test from `pip config list` on this machine.
PIP_SETTINGS = {}
GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')

ensurepip.bootstrap(upgrade=True)
# ensurepip leaves PIP_CONFIG_FILE=/dev/null in our environment; it would hide the settings below.
os.environ.pop('PIP_CONFIG_FILE', None)
os.environ.pop('ENSUREPIP_OPTIONS', None)
if PIP_SETTINGS:
    with open(os.path.join(sys.prefix, 'pip.conf'), 'w') as handle:
        handle.write('[global]\n')
        for key, value in sorted(PIP_SETTINGS.items()):
            handle.write('%s = %s\n' % (key, value))
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))
