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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keeps each phase's report on the test item, so a fixture can tell whether its test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, 'report_' + report.when, report)
