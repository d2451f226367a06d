"""Property tests (hypothesis): for any set of inputs, one result per distinct file, ids unique,
nothing outside the storage root (issue #26)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.runtime.names import NameError_, check_name
from jobs.runtime.spark import task_count
from jobs.scenes.windows import list_scenes, scene_id
from jobs.storage import LocalStorage, StorageError

# File-name pieces that have broken ids before: spaces, underscores, dots, case, unicode, `__`.
PIECE = (
    st.lists(st.sampled_from([*"aAb_ -.é1", "__"]), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda s: s.strip(".") == s and s.strip() == s and s not in (".", ".."))
)
NAME = st.builds(lambda stem, ext: stem + ext, PIECE, st.sampled_from([".tif", ".tiff", ".TIF", ".img", ""]))
RELATIVE = st.lists(NAME, min_size=1, max_size=3).map("/".join)
LOOSE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(st.sets(RELATIVE, min_size=1, max_size=12))
@settings(max_examples=300, deadline=None)
def test_scene_ids_are_unique_for_any_set_of_paths(paths):
    ids = [scene_id(p) for p in paths]
    assert len(set(ids)) == len(ids)
    assert all(i and "/" not in i and not i.startswith(".") for i in ids)


class _Slots:
    """Stands in for a classic session: only ``sparkContext.defaultParallelism`` is read."""

    def __init__(self, slots: int) -> None:
        self.sparkContext = type("Context", (), {"defaultParallelism": slots})()


@given(st.integers(0, 100_000), st.integers(1, 512), st.integers(1, 64))
@settings(max_examples=300, deadline=None)
def test_tasks_come_in_whole_waves_of_at_most_per_task_items(n, per_task, slots):
    tasks = task_count(_Slots(slots), n, per_task)  # type: ignore[arg-type]
    assert tasks % slots == 0 and tasks >= slots
    assert tasks * per_task >= n  # no task holds more than per_task items
    assert tasks - slots < max(1, -(-n // per_task))  # and no whole wave more than needed


@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_any_parts_land_inside_the_root_or_are_refused(parts):
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStorage(tmp)
        try:
            path = Path(store.uri(*parts))
        except (StorageError, ValueError):  # ValueError: NUL in a path
            return
        assert path.resolve().is_relative_to(store.root) and path != store.root


@given(st.text(max_size=140))
@settings(max_examples=500, deadline=None)
def test_a_name_that_passes_the_check_is_one_path_part(value):
    try:
        check_name("model", value)
    except NameError_:
        return
    assert "/" not in value and value not in (".", "..") and not value.startswith(".") and len(value) <= 128


@given(
    files=st.sets(st.builds(lambda s: s + ".tif", PIECE), min_size=1, max_size=5),
    data=st.data(),
)
@LOOSE
def test_a_list_file_scores_each_distinct_file_once_however_it_is_spelt(spark, tmp_path_factory, files, data):
    folder = tmp_path_factory.mktemp("listed")
    (folder / "sub").mkdir()
    for name in files:
        (folder / "sub" / name).write_bytes(b"")
    spellings = []
    for name in sorted(files):
        forms = [str(folder / "sub" / name), f"sub/{name}", f"./sub/{name}", f"{folder}//sub/./{name}"]
        spellings += data.draw(st.lists(st.sampled_from(forms), min_size=1, max_size=3), label=name)
    listing = folder / "scenes.txt"
    listing.write_text("\n".join(data.draw(st.permutations(spellings), label="order")) + "\n")
    skipped: Counter[str] = Counter()
    rows = list_scenes(spark, str(listing), skipped)[0].collect()
    assert sorted(r["path"] for r in rows) == sorted(os.path.normpath(folder / "sub" / n) for n in files)
    assert len({r["scene_id"] for r in rows}) == len(rows)
    assert skipped["duplicate"] == len(spellings) - len(files)
    shutil.rmtree(folder)


@pytest.mark.parametrize("kind", ["folder"])
@given(names=st.sets(RELATIVE, min_size=1, max_size=8))
@LOOSE
def test_a_folder_of_scenes_gives_one_row_and_one_id_per_file(spark, tmp_path_factory, kind, names):
    folder = tmp_path_factory.mktemp(kind)
    made = set()
    for rel in names:
        path = folder / rel
        if any(p.is_file() for p in path.parents if p.is_relative_to(folder)) or path.is_dir():
            continue  # a file where a folder would be: not a layout that can exist
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        made.add(rel)
    skipped: Counter[str] = Counter()
    rows = list_scenes(spark, str(folder), skipped)[0].collect()
    visible = {m for m in made if not any(p.startswith((".", "_")) for p in m.split("/"))}  # hidden: skipped
    assert sorted(r["path"] for r in rows) == sorted(str(folder / m) for m in visible)
    assert len({r["scene_id"] for r in rows}) == len(rows)
    assert (skipped["hidden"] > 0) == (visible != made)
    shutil.rmtree(folder)
