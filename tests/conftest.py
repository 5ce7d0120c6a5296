"""Make the repository importable as ansible_collections.parker.kernel.

ansible-test wants the tree at ansible_collections/parker/kernel/; plain pytest
gets the same layout from a symlink in a temporary folder, so nobody has to move
their checkout.
"""
import importlib
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensure_collection_path():
    try:
        import ansible_collections.parker.kernel.plugins.module_utils  # noqa: F401
        return
    except ImportError:
        pass
    top = tempfile.mkdtemp(prefix='parker-kernel-')
    os.makedirs(os.path.join(top, 'ansible_collections', 'parker'))
    os.symlink(REPO, os.path.join(top, 'ansible_collections', 'parker', 'kernel'))
    sys.path.insert(0, top)
    for name in [m for m in sys.modules if m == 'ansible_collections' or m.startswith('ansible_collections.')]:
        del sys.modules[name]
    importlib.invalidate_caches()


_ensure_collection_path()
