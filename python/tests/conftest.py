"""Fixtures shared by the test modules."""
import os

import pytest

from test_tar_and_readers import text


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "a.txt").write_bytes(b"hello\n")
    (root / "sub" / "big.bin").write_bytes(text(3 * 1024 * 1024 + 7, 2))
    (root / "sub" / "deeper" / "caf\u00e9 \u00fcber.txt").write_bytes(b"non-ascii name\n")
    (root / "link").symlink_to("a.txt")
    os.link(root / "a.txt", root / "hard")
    os.chmod(root / "a.txt", 0o640)
    return root
