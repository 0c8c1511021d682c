import json
import os
import stat

import pandas as pd
import pytest

from pipeline import files
from pipeline.files import atomic_path, read_table, write_csv, write_json, write_text


def test_a_file_appears_only_once_complete_in_a_new_folder(tmp_path):
    path = tmp_path / "new/folder/out.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("half")
        assert not path.exists() and tmp.parent == path.parent  # beside it: the move is a rename
    assert path.read_text() == "half"
    assert os.listdir(path.parent) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"accuracy": 0.9})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("{trunc")
            raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"accuracy": 0.9}
    assert os.listdir(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_get_the_mode_the_umask_allows_not_mkstemps_private_one(tmp_path, monkeypatch, umask, mode):
    monkeypatch.setattr(files, "UMASK", umask)  # the process's umask, as read at import
    write_text(tmp_path / "report.md", "# report\n")
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == mode


def test_json_is_sorted_and_ends_with_a_newline(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": {"d": 2, "c": 3}})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'


def test_a_table_reads_back_with_labels_as_text_and_empty_cells_as_gaps(tmp_path):
    frame = pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "label": ["NA", "null", "1.0"],
                          "probability": [0.5, None, 1.0]})
    write_csv(tmp_path / "t.csv", frame)
    read = read_table(tmp_path / "t.csv", text_columns=("path", "label"))
    assert read["label"].tolist() == ["NA", "null", "1.0"]
    assert read["probability"].isna().tolist() == [False, True, False]
    assert read["probability"].dtype == float
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "path,label,probability"  # no index column
