import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from stcbench.data import build_splits
from stcbench.data import kth
from stcbench.data.generators import kth as kth_gen
from stcbench.data.resize import resize_linear_u8
from stcbench.errors import DataError

from .conftest import write_kth_tree_by_hand


def frame_list(*videos):
    """Concatenated frame list of videos given as (frame numbers, overlapping?)."""
    ids, numbers, overlapping = [], [], []
    for vid, (frames, over) in enumerate(videos):
        ids += [vid] * len(frames)
        numbers += list(frames)
        overlapping += [over] * len(frames)
    return np.array(ids), np.array(numbers), np.array(overlapping)


def test_non_overlapping_windows_jump_back_a_full_window():
    starts = kth.window_starts(*frame_list((range(1, 101), False)), seq_len=30)
    assert starts == [70, 40, 10]


def test_jogging_and_running_windows_every_three_frames():
    starts = kth.window_starts(*frame_list((range(1, 101), True)), seq_len=30)
    assert starts == list(range(70, -1, -3))
    assert len(starts) == 24


def test_windows_never_cross_videos_or_frame_gaps():
    # two 35-frame videos back to back: one window each, none across the boundary
    assert kth.window_starts(*frame_list((range(1, 36), False), (range(1, 36), False)), 30) == [40, 5]
    # frames 1-40 and 50-89 in one folder: the gap rejects every window that spans it
    gap = list(range(1, 41)) + list(range(50, 90))
    assert kth.window_starts(*frame_list((gap, False)), 30) == [50, 10]
    assert kth.window_starts(*frame_list((range(1, 30), False)), 30) == []


def test_loader_counts_windows_per_person_split(tmp_path):
    videos = {(action, person): 34 for action in kth.ACTIONS for person in (1, 15, 17)}
    videos[("walking", 17)] = 60
    write_kth_tree_by_hand(tmp_path, videos)
    # per person: 4 non-overlapping actions x 1 window + jogging, running x 2 windows = 8;
    # person 17's 60-frame walking video holds 2 windows
    splits = build_splits("kth", tmp_path)
    assert splits.sizes() == {"train": 8, "val": 8, "test": 9}
    openstl = build_splits("kth", tmp_path, selection="openstl_test")
    assert openstl.sizes() == {"train": 16, "val": 9, "test": 9}
    long = build_splits("kth40", tmp_path)          # 50-frame windows fit only the 60-frame video
    assert (len(long.train), len(long.test)) == (8, 1)
    assert long.test[0].shape == (50, 1, 128, 128) and long.train[0].shape == (30, 1, 128, 128)


def test_frames_are_channel_zero_resized_like_opencv(tmp_path):
    folder = tmp_path / "kth" / "boxing" / "person01_boxing_d1_uncomp"
    write_kth_tree_by_hand(tmp_path, {("boxing", 1): 30})
    rng = np.random.default_rng(0)
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = rng.integers(0, 256, (120, 160))
    Image.fromarray(rgb).save(folder / "image_0007.jpg", quality=95)
    sample = build_splits("kth", tmp_path, log=None).train[0]
    assert sample.dtype == torch.float32 and sample.shape == (30, 1, 128, 128)
    decoded = np.asarray(Image.open(folder / "image_0007.jpg"))[:, :, 0]
    expected = resize_linear_u8(decoded, 128, 128).astype(np.float32) / 255
    np.testing.assert_array_equal(sample[6, 0].numpy(), expected)
    assert abs(float(sample[6].mean()) - 200 / 255) < 0.03        # red channel, not the mean


def test_cache_is_built_once_and_rebuilt_when_files_change(tmp_path, monkeypatch):
    write_kth_tree_by_hand(tmp_path, {("running", 2): 33})
    first = build_splits("kth", tmp_path).train[0]
    caches = list((tmp_path / ".stcbench_cache").iterdir())
    assert len(caches) == 1 and (caches[0] / "frames.npy").is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(kth, "decode_video", no_decoding)
    torch.testing.assert_close(build_splits("kth", tmp_path).train[0], first)
    monkeypatch.undo()
    frame = tmp_path / "kth" / "running" / "person02_running_d1_uncomp" / "image_0001.jpg"
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(frame)
    changed = build_splits("kth", tmp_path).train
    rebuilt = list((tmp_path / ".stcbench_cache").iterdir())
    assert len(rebuilt) == 1 and rebuilt[0] != caches[0]          # the copy of the earlier tree is removed
    assert float(changed[len(changed) - 1][0].max()) < 0.05       # the new black frame is read


def test_a_killed_decode_leaves_nothing_behind_and_other_trees_keep_their_caches(tmp_path, monkeypatch):
    monkeypatch.setenv(kth.CACHE_ENV, str(tmp_path / "shared-cache"))
    one, other = tmp_path / "one", tmp_path / "other"
    write_kth_tree_by_hand(one, {("running", 2): 33})
    write_kth_tree_by_hand(other, {("walking", 3): 30})
    build_splits("kth", other)
    other_cache = list((tmp_path / "shared-cache").iterdir())
    build_splits("kth", one)
    caches = sorted((tmp_path / "shared-cache").iterdir())
    assert len(caches) == 2 and other_cache[0] in caches
    mine = next(c for c in caches if c != other_cache[0])
    (mine / "frames.npy").unlink()                               # as if the decode was killed before its rename
    leftover = mine / ".frames.npy.abc123.tmp.npy"
    leftover.write_bytes(b"half a cache")
    build_splits("kth", one)
    assert (mine / "frames.npy").is_file() and not leftover.exists()
    assert other_cache[0].is_dir()                               # another tree's cache is not an earlier version


def test_a_second_process_waits_for_the_decode_and_uses_it(tmp_path, monkeypatch):
    """Two runs that start on the same new tree decode it once: the second waits on the cache's lock."""
    import threading

    from stcbench.atomic import exclusive_lock

    write_kth_tree_by_hand(tmp_path, {("running", 2): 33})
    expected = build_splits("kth", tmp_path).train[0]
    cache = next((tmp_path / ".stcbench_cache").iterdir())
    frames = (cache / "frames.npy").read_bytes()
    (cache / "frames.npy").unlink()
    decoded_by = []
    real_decode = kth.decode_video
    monkeypatch.setattr(kth, "decode_video", lambda *a, **k: decoded_by.append(threading.get_ident())
                        or real_decode(*a, **k))
    result = {}
    with exclusive_lock(cache / ".lock"):                        # this "process" is decoding the tree
        waiting = threading.Thread(target=lambda: result.update(sample=build_splits("kth", tmp_path).train[0]))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive() and not decoded_by             # it waits, decoding nothing
        (cache / "frames.npy").write_bytes(frames)               # the decode this "process" finished
    waiting.join(timeout=60)
    assert not waiting.is_alive() and not decoded_by
    torch.testing.assert_close(result["sample"], expected)


def test_cache_location_can_be_redirected(tmp_path, monkeypatch):
    write_kth_tree_by_hand(tmp_path, {("walking", 3): 30})
    monkeypatch.setenv(kth.CACHE_ENV, str(tmp_path / "elsewhere"))
    build_splits("kth", tmp_path)
    assert list((tmp_path / "elsewhere").glob("kth-*/frames.npy"))
    assert not (tmp_path / ".stcbench_cache").exists()


@pytest.mark.parametrize("problem", ["corrupt", "folder_name", "missing_action", "no_frames"])
def test_bad_trees_are_rejected_with_the_path_named(tmp_path, problem):
    kth_dir = write_kth_tree_by_hand(tmp_path, {("handwaving", 4): 30})
    video = kth_dir / "handwaving" / "person04_handwaving_d1_uncomp"
    if problem == "corrupt":
        bad = video / "image_0003.jpg"
        bad.write_bytes(bad.read_bytes()[:100])
    elif problem == "folder_name":
        bad = kth_dir / "boxing" / "someone_boxing_d1"
        bad.mkdir()
    elif problem == "missing_action":
        bad = kth_dir / "jogging"
        os.rmdir(bad)
    else:
        bad = kth_dir / "walking" / "person05_walking_d2_uncomp"
        bad.mkdir()
    with pytest.raises(DataError) as err:
        build_splits("kth", tmp_path)
    assert str(bad) in str(err.value) and "stcbench data generate" in str(err.value)
    assert not list(tmp_path.glob(".stcbench_cache/*/frames.npy"))


def test_generated_tree_layout_and_motion(generated_root):
    kth_dir = generated_root / "kth"
    pattern = re.compile(r"^person(\d\d)_(\w+)_(d[1-4])_uncomp$")
    persons, scenarios = set(), set()
    for action in kth.ACTIONS:
        for name in os.listdir(kth_dir / action):
            m = pattern.match(name)
            assert m and m.group(2) == action, name
            persons.add(int(m.group(1)))
            scenarios.add(m.group(3))
            assert sorted(os.listdir(kth_dir / action / name))[-1] == "image_0031.jpg"
    assert persons == set(range(1, 26)) and scenarios == {"d1", "d2", "d3", "d4"}
    with Image.open(kth_dir / "boxing" / "person01_boxing_d2_uncomp" / "image_0001.jpg") as im:
        assert (im.size, im.mode) == ((160, 120), "RGB")


def figure_centre(frame, scene):
    mask = np.abs(frame.astype(int) - scene.astype(int)) > 40
    return np.nonzero(mask)[1].mean()


@pytest.mark.parametrize("action, moves", [("boxing", False), ("handwaving", False),
                                           ("walking", True), ("running", True)])
def test_generated_actions_move_or_stay(action, moves):
    frames = list(kth_gen.render_video(action, 3, "d1", 20, seed=0))
    rng = np.random.default_rng([0, 22, 3, kth.ACTIONS.index(action), 0])
    scene, _ = kth_gen.background("d1", rng)
    shift = abs(figure_centre(frames[-1], scene) - figure_centre(frames[0], scene))
    assert (shift > 10) if moves else (shift < 4)


def test_generated_speeds_increase_from_walking_to_running():
    speeds = [kth_gen.GAIT[a][0] for a in ("walking", "jogging", "running")]
    assert speeds == sorted(speeds) and len(set(speeds)) == 3


def test_splits_use_disjoint_persons(generated_root):
    table = kth.FrameTable.from_videos(kth.scan_tree(generated_root / "kth", ""))
    splits = build_splits("kth", generated_root)
    persons = {split: set(table.persons[getattr(splits, split).starts].tolist())
               for split in ("train", "val", "test")}
    assert persons == {"train": set(range(1, 15)), "val": {15, 16}, "test": set(range(17, 26))}
    for split in ("train", "val", "test"):
        starts = getattr(splits, split).starts
        ends = starts + 29
        assert (table.video_ids[starts] == table.video_ids[ends]).all()
        assert (table.frame_numbers[ends] - table.frame_numbers[starts] == 29).all()


def test_windows_pickle_as_a_path_not_the_frames(generated_root):
    import pickle

    train = build_splits("kth", generated_root).train
    payload = pickle.dumps(train)
    assert len(payload) < 50_000 < train.frames.nbytes         # spawned workers reopen the memmap
    torch.testing.assert_close(pickle.loads(payload)[5], train[5])


def test_a_cache_whose_lock_cannot_be_taken_is_one_line_naming_the_fix(tmp_path):
    """A lock that cannot be opened (here a folder in its place; a read-only cache folder alike): one DataError."""
    write_kth_tree_by_hand(tmp_path, {("running", 2): 33})
    folder = tmp_path / ".stcbench_cache" / "kth-locked"
    (folder / ".lock").mkdir(parents=True)
    with pytest.raises(DataError, match=f"cannot lock the KTH frame cache.*set {kth.CACHE_ENV} to a writable folder"):
        kth.build_cache(tmp_path / "kth", [], folder, 0, "")
    assert not (folder / "frames.npy").exists()
