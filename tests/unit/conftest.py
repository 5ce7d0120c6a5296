import pytest

from fakehost import FakeHost  # noqa: E402  (tests/unit is on sys.path under pytest rootdir conftest)


class FakeModule:
    """Just enough of AnsibleModule for execute(): params, check_mode, run_command, exits."""

    def __init__(self, params, check_mode=False, commands=None):
        self.params = params
        self.check_mode = check_mode
        self.commands = commands if commands is not None else {}
        self.ran = []

    def run_command(self, argv, environ_update=None):
        self.ran.append(list(argv))
        for prefix, reply in self.commands.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return reply(argv) if callable(reply) else reply
        return 0, '', ''

    def exit_json(self, **result):
        raise ModuleExit(result)

    def fail_json(self, **result):
        result['failed'] = True
        raise ModuleExit(result)


class ModuleExit(Exception):
    def __init__(self, result):
        self.result = result
        super(ModuleExit, self).__init__(result)


def snapshot(root):
    """Every file's content under root: a check-mode run must leave it identical."""
    import os
    state = {}
    for top, dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                with open(path, 'rb') as handle:
                    state[path] = handle.read()
        for name in dirs:
            path = os.path.join(top, name)
            if os.path.islink(path):
                state[path] = os.readlink(path)
    return state


@pytest.fixture
def host(tmp_path):
    return FakeHost(tmp_path / 'root').build()


@pytest.fixture
def sim(host, monkeypatch):
    from fakehost import KernelSim
    return KernelSim(host).install(monkeypatch)


@pytest.fixture
def fail_write(sim, monkeypatch):
    """fail_write(suffix, value, errno) makes writes of ``value`` to paths ending in ``suffix`` fail."""
    from ansible_collections.parker.kernel.plugins.module_utils import _hostio
    import os
    inner = _hostio.Transaction._write_now
    rules = []

    def write(txn, rel, value):
        for suffix, wanted, code in rules:
            if rel.endswith(suffix) and (wanted is None or str(value) == wanted):
                raise _hostio.ApplyError('write %s to %s' % (value, rel), code, os.strerror(code))
        return inner(txn, rel, value)
    monkeypatch.setattr(_hostio.Transaction, '_write_now', write)
    return lambda suffix, value, code: rules.append((suffix, value, code))


@pytest.fixture
def run(host, sim):
    from ansible_collections.parker.kernel.plugins.module_utils._common import execute

    def _run(operation, params, check_mode=False, commands=None):
        module = FakeModule(params, check_mode=check_mode, commands=commands)
        with pytest.raises(ModuleExit) as exc:
            execute(module, operation, root=host.root)
        exc.value.result['_ran'] = module.ran
        return exc.value.result
    return _run
