import os

import pytest

from harness import fleet_state


@pytest.fixture(scope='session')
def fleet():
    state = fleet_state()
    if state is None:
        message = 'the QEMU test fleet is not running: start it with tools/fleet/fleet up'
        if os.environ.get('PARKER_FLEET_REQUIRED') == '1':
            pytest.fail(message)
        pytest.skip(message)
    return state
