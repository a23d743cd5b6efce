"""The one atomic write: the final name holds the old file or the new one, never half of either."""

import os

import pytest

from kdas_utils.files import atomic_path, write_text


def test_a_block_that_fails_leaves_the_old_file_and_no_part(tmp_path):
    path = tmp_path / "table.csv"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_path(path) as partial:
        partial.write_text("half a ne")
        raise RuntimeError("stopped")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]


def test_the_new_file_replaces_the_old_one_whole_in_a_new_folder(tmp_path):
    path = tmp_path / "deep" / "summary.json"
    with atomic_path(path, per_process=True) as partial:
        assert partial.name == f"summary.json.{os.getpid()}.part" and not path.exists()
        partial.write_text("{}")
    assert path.read_text() == "{}" and not partial.exists()
