"""`stcbench data download` against a loopback HTTP server serving generated files in the published
formats: verified install, wrong checksum (exit 2, nothing kept), interrupted transfer resumed."""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stcbench import cli
from stcbench.data import check_dataset, generate_dataset
from stcbench.data import download as dl
from tests.data.conftest import TINY


class Server:
    """Serves `files` with Range support; `cut[name] = n` sends n bytes of it and then drops the connection."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut, self.ranges = files, {}, []
        self.ignore_ranges = False      # answer a Range request with the whole file (200), as some servers do
        self.stall = {}                 # stall[name] = n: send n bytes of it, then nothing more for a minute
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.respond(body=False)

            def do_GET(self):
                self.respond(body=True)

            def respond(self, body: bool):
                name = self.path.lstrip("/")
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                requested = self.headers.get("Range")
                if body and requested and not server.ignore_ranges:
                    server.ranges.append((name, requested))
                    start = int(requested.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                self.send_response(206 if start else 200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                if name in server.stall:
                    self.wfile.write(data[start:server.stall[name]])
                    self.wfile.flush()
                    time.sleep(60)
                    return
                stop = server.cut.pop(name, len(data))
                self.wfile.write(data[start:stop])
                if stop < len(data):
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def generated_root(tmp_path_factory):
    """Tiny generated Moving MNIST and TaxiBJ: the files the loopback server publishes."""
    root = tmp_path_factory.mktemp("published")
    for name in ("mmnist", "taxibj"):
        generate_dataset(name, root, seed=0, overrides=TINY[name])
    return root


@pytest.fixture
def mmnist_files(generated_root):
    folder = generated_root / "moving_mnist"
    return {name: (folder / name).read_bytes() for name in ("train-images-idx3-ubyte.gz", "mnist_test_seq.npy")}


@pytest.fixture
def served(mmnist_files, monkeypatch):
    server = Server(dict(mmnist_files))
    published = tuple(replace(s, md5=hashlib.md5(mmnist_files[s.name]).hexdigest(), size=len(mmnist_files[s.name]))
                      for s in dl.SOURCES["mmnist"])
    monkeypatch.setitem(dl.SOURCES, "mmnist", published)
    yield server
    server.close()


def download(root, server, *extra) -> int:
    return cli.main(["data", "download", "--dataset", "mmnist", "--data-root", str(root), "--mirror", server.url,
                     *extra])


def test_the_published_sources_carry_the_published_md5s():
    md5 = {s.name: s.md5 for s in dl.SOURCES["mmnist"]}
    assert md5 == {"mnist_test_seq.npy": "be083ec986bfe91a449d63653c411eb2",
                   "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873"}
    assert all(s.url.startswith(("http://", "https://")) for sources in dl.SOURCES.values() for s in sources)


def test_download_verifies_and_installs_real_data(tmp_path, served, mmnist_files, capsys):
    root = tmp_path / "data"
    assert download(root, served) == 0
    folder = root / "moving_mnist"
    for name, data in mmnist_files.items():
        assert (folder / name).read_bytes() == data
    assert sorted(p.name for p in root.iterdir()) == ["moving_mnist"]        # the download cache is gone
    assert check_dataset("mmnist", root)["source"] == "real"                   # the loaders read it, no marker
    out = capsys.readouterr().out
    assert hashlib.sha256(mmnist_files["mnist_test_seq.npy"]).hexdigest() in out
    assert download(root, served) == 0 and "already in" in capsys.readouterr().out


def test_data_check_names_the_downloaded_data_by_its_checksum(tmp_path, served, capsys):
    from stcbench.data.checksum import dataset_checksum

    root = tmp_path / "data"
    assert download(root, served) == 0
    capsys.readouterr()
    assert cli.main(["data", "check", "--dataset", "mmnist", "--data-root", str(root)]) == 0
    checksum = dataset_checksum("mmnist", root)
    assert checksum.startswith("sha256:") and f"checksum {checksum}" in capsys.readouterr().out
    assert cli.main(["data", "check", "--dataset", "mmnist", "--data-root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checksum"] == checksum


def test_a_wrong_checksum_keeps_nothing(tmp_path, served, monkeypatch, capsys):
    wrong = tuple(replace(s, md5="0" * 32) if s.name == "mnist_test_seq.npy" else s for s in dl.SOURCES["mmnist"])
    monkeypatch.setitem(dl.SOURCES, "mmnist", wrong)
    root = tmp_path / "data"
    assert download(root, served) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist_test_seq.npy" in err and "MD5" in err and "nothing was kept" in err
    assert not (root / "moving_mnist").exists()
    assert not list((root / dl.DOWNLOADS).rglob("mnist_test_seq*"))             # no partial, no temporary


def test_a_wrong_size_keeps_nothing(tmp_path, served, monkeypatch, capsys):
    sized = tuple(replace(s, md5=None, size=s.size + 1) for s in dl.SOURCES["mmnist"])
    monkeypatch.setitem(dl.SOURCES, "mmnist", sized)
    root = tmp_path / "data"
    assert download(root, served) == 2
    assert "not the published" in capsys.readouterr().err
    assert not (root / "moving_mnist").exists() and not list((root / dl.DOWNLOADS).rglob("*.gz*"))


def test_an_interrupted_transfer_resumes(tmp_path, served, mmnist_files, capsys):
    root = tmp_path / "data"
    served.cut["mnist_test_seq.npy"] = 300_000
    assert download(root, served) == 2
    assert "run the same command again to resume" in capsys.readouterr().err
    assert not (root / "moving_mnist").exists()
    kept = (root / dl.DOWNLOADS / "mmnist" / "mnist_test_seq.npy.part").stat().st_size
    assert 300_000 - dl.TRANSFER_CHUNK <= kept <= 300_000          # all but the chunk in flight
    assert download(root, served) == 0
    assert served.ranges == [("mnist_test_seq.npy", f"bytes={kept}-")]
    assert (root / "moving_mnist" / "mnist_test_seq.npy").read_bytes() == mmnist_files["mnist_test_seq.npy"]


def test_a_server_that_answers_a_resume_with_the_whole_file_is_written_from_the_first_byte(tmp_path, served,
                                                                                           mmnist_files, capsys):
    """A server that says it takes ranges but answers one with 200 and the whole file: the kept part is not
    prefixed to it."""
    root = tmp_path / "data"
    served.cut["mnist_test_seq.npy"] = 300_000
    assert download(root, served) == 2
    served.ignore_ranges = True
    assert download(root, served) == 0
    assert (root / "moving_mnist" / "mnist_test_seq.npy").read_bytes() == mmnist_files["mnist_test_seq.npy"]
    assert hashlib.sha256(mmnist_files["mnist_test_seq.npy"]).hexdigest() in capsys.readouterr().out


def test_sigterm_during_a_transfer_keeps_the_part_file_and_nothing_else(tmp_path, served):
    """A download ended by SIGTERM (a job's time limit, say) exits 143 through its clean-up: the part file stays for
    the next call to resume, no temporary file is left beside it."""
    import os
    import signal
    import subprocess
    import sys

    served.stall["train-images-idx3-ubyte.gz"] = dl.TRANSFER_CHUNK + 1000     # one chunk written, one in flight
    root = tmp_path / "data"
    process = subprocess.Popen([sys.executable, "-m", "stcbench", "data", "download", "--dataset", "mmnist",
                                "--data-root", str(root), "--mirror", served.url], stderr=subprocess.PIPE, text=True)
    part = root / dl.DOWNLOADS / "mmnist" / "train-images-idx3-ubyte.gz.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size >= dl.TRANSFER_CHUNK) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "stopped by SIGTERM" in err and "Traceback" not in err
    assert sorted(p.name for p in part.parent.iterdir()) == [part.name] and part.stat().st_size == dl.TRANSFER_CHUNK


def test_generated_data_is_replaced_only_with_force(tmp_path, served, generated_root, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(generated_root / "moving_mnist", root / "moving_mnist")
    before = sorted(p.name for p in (root / "moving_mnist").iterdir())
    assert download(root, served) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "moving_mnist").iterdir()) == before
    assert download(root, served, "--force") == 0
    assert check_dataset("mmnist", root)["source"] == "real"


def test_force_never_deletes_a_users_own_files_in_the_dataset_folder(tmp_path, served, generated_root, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(generated_root / "moving_mnist", root / "moving_mnist")
    (root / "moving_mnist" / "my_results.csv").write_text("mine")
    before = sorted(p.name for p in (root / "moving_mnist").iterdir())
    capsys.readouterr()
    assert download(root, served, "--force") == 2
    assert "my_results.csv" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "moving_mnist").iterdir()) == before


def download_taxibj_archive(root, members: dict[str, bytes]) -> tuple[int, bytes]:
    """`data download --dataset taxibj` from a loopback mirror serving a zip of `members`: (exit status, the zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    server = Server({"taxibj_dataset.zip": buffer.getvalue()})
    try:
        return cli.main(["data", "download", "--dataset", "taxibj", "--data-root", str(root), "--mirror",
                         server.url]), buffer.getvalue()
    finally:
        server.close()


def test_an_archive_is_unpacked_into_the_dataset_folder(tmp_path, generated_root, monkeypatch, capsys):
    npz = (generated_root / "taxibj" / "dataset.npz").read_bytes()
    root = tmp_path / "data"
    status, archive = download_taxibj_archive(root, {"taxibj/dataset.npz": npz})
    assert status == 0
    assert (root / "taxibj" / "dataset.npz").read_bytes() == npz
    assert check_dataset("taxibj", root)["source"] == "real"
    captured = capsys.readouterr()
    assert hashlib.sha256(archive).hexdigest() in captured.out
    # no checksum of the archive is published: a file of other sample counts than the published one is named
    assert "samples, the published archive 20,461 and 500: it is not the published TaxiBJ" in captured.out + captured.err


def test_an_archive_whose_members_collide_is_removed_with_one_line(tmp_path, generated_root, capsys):
    """A mirror's archive holding a file and a folder of one name is not the published one: removed, so that the next
    call downloads anew, and said in one line."""
    npz = (generated_root / "taxibj" / "dataset.npz").read_bytes()
    root = tmp_path / "data"
    members = {"taxibj/dataset.npz": npz, "taxibj/a": b"x", "taxibj/a/b": b"y"}
    assert download_taxibj_archive(root, members)[0] == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "collides with another member" in err[0]
    assert not (root / dl.DOWNLOADS).exists() and not (root / "taxibj").exists()


@pytest.mark.parametrize("mirror", ["notaurl", "file:///tmp", "ftp://example.org/data", "http://"])
def test_a_mirror_that_is_not_an_http_url_is_refused_up_front(tmp_path, mirror, capsys):
    root = tmp_path / "data"
    assert cli.main(["data", "download", "--dataset", "mmnist", "--data-root", str(root), "--mirror", mirror]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and repr(mirror) in err and "http:// or https://" in err and "resume" not in err
    assert not root.exists()


def test_a_mirror_that_does_not_answer_leaves_no_part_file_or_folder(tmp_path, capsys):
    import socket

    with socket.socket() as probe:                      # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "data"
    assert cli.main(["data", "download", "--dataset", "mmnist", "--data-root", str(root),
                     "--mirror", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert "before any data arrived" in err and "resume from there" not in err
    assert not root.exists()


def test_a_missing_file_on_the_mirror_names_the_http_status(tmp_path, served, capsys):
    del served.files["mnist_test_seq.npy"]
    root = tmp_path / "data"
    assert download(root, served) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert not list((root / dl.DOWNLOADS).rglob("*.part"))      # the first file stays for the next call


def test_a_part_file_as_long_as_the_file_or_longer_is_downloaded_anew(tmp_path, served, mmnist_files, capsys):
    """The server answers 416 to a range past the end (a transfer killed before its rename, or a stale longer
    part): the part is dropped and the file fetched from its first byte, not 'resumed' for ever."""
    root = tmp_path / "data"
    cache = root / dl.DOWNLOADS / "mmnist"
    cache.mkdir(parents=True)
    (cache / "mnist_test_seq.npy.part").write_bytes(b"x" * (len(mmnist_files["mnist_test_seq.npy"]) + 10))
    assert download(root, served) == 0
    assert (root / "moving_mnist" / "mnist_test_seq.npy").read_bytes() == mmnist_files["mnist_test_seq.npy"]


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def download_taxibj(root, server, *extra) -> int:
    return cli.main(["data", "download", "--dataset", "taxibj", "--data-root", str(root), "--mirror", server.url,
                     *extra])


def test_a_wrong_archive_is_not_kept_and_force_downloads_anew(tmp_path, generated_root, capsys):
    good = zip_of({"taxibj/dataset.npz": (generated_root / "taxibj" / "dataset.npz").read_bytes()})
    wrong, right = Server({"taxibj_dataset.zip": zip_of({"readme.txt": b"another archive"})}), Server(
        {"taxibj_dataset.zip": good})
    root = tmp_path / "data"
    try:
        assert download_taxibj(root, wrong) == 2
        assert "holds no 'dataset.npz'" in capsys.readouterr().err
        assert not (root / dl.DOWNLOADS).exists()           # the archive removed, no empty folder left
        assert download_taxibj(root, right) == 0          # fetched again, not taken from the cache
        # a wrong archive an earlier version left in the cache: --force downloads anew
        cache = root / dl.DOWNLOADS / "taxibj"
        cache.mkdir(parents=True)
        (cache / "taxibj_dataset.zip").write_bytes(zip_of({"readme.txt": b"stale"}))
        assert download_taxibj(root, right, "--force") == 0
    finally:
        wrong.close()
        right.close()
    assert (root / "taxibj" / "dataset.npz").read_bytes() == (generated_root / "taxibj" / "dataset.npz").read_bytes()


def test_a_download_that_fails_the_file_check_installs_nothing(tmp_path, capsys):
    server = Server({"taxibj_dataset.zip": zip_of({"taxibj/dataset.npz": b"not an npz"})})
    root = tmp_path / "data"
    try:
        assert download_taxibj(root, server) == 2
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "the taxibj download is not the published dataset" in err and "not a numpy file" in err
    assert not (root / "taxibj").exists() and not (root / dl.DOWNLOADS / "taxibj").exists()


def test_files_in_place_that_fail_the_file_check_are_not_taken_for_the_dataset(tmp_path, served, mmnist_files, capsys):
    root = tmp_path / "data"
    (root / "moving_mnist").mkdir(parents=True)
    for name in mmnist_files:
        (root / "moving_mnist" / name).write_text("junk\n")
    assert download(root, served) == 2
    err = capsys.readouterr().err
    assert "fail the check" in err and "--force" in err
    assert download(root, served, "--force") == 0
    assert check_dataset("mmnist", root)["source"] == "real"


def test_all_datasets_go_on_past_one_that_fails(tmp_path, generated_root, capsys):
    good = zip_of({"taxibj/dataset.npz": (generated_root / "taxibj" / "dataset.npz").read_bytes()})
    server = Server({"taxibj_dataset.zip": good})          # no Moving MNIST or KTH files on this mirror
    root = tmp_path / "data"
    try:
        assert cli.main(["data", "download", "--dataset", "all", "--data-root", str(root), "--mirror", server.url]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "2 of 3 datasets failed (mmnist, kth" in err and "HTTP 404" in err
    assert check_dataset("taxibj", root)["source"] == "real"


def test_force_downloads_finished_files_anew_but_resumes_an_interrupted_transfer(tmp_path, served, generated_root,
                                                                                 mmnist_files):
    """--force is how generated data is replaced, so a transfer it interrupted must still resume under --force."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(generated_root / "moving_mnist", root / "moving_mnist")
    cache = root / dl.DOWNLOADS / "mmnist"
    cache.mkdir(parents=True)
    (cache / "mnist_test_seq.npy.part").write_bytes(mmnist_files["mnist_test_seq.npy"][:300_000])
    (cache / "train-images-idx3-ubyte.gz").write_bytes(b"a stale file of another download")
    assert download(root, served, "--force") == 0
    assert served.ranges == [("mnist_test_seq.npy", "bytes=300000-")]
    for name, data in mmnist_files.items():
        assert (root / "moving_mnist" / name).read_bytes() == data
