"""ctcnet.io.atomic: one run per output folder."""

import os
from pathlib import Path

import pytest

from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text, exclusive_folder
from ctcnet.io.written_together import written_together


def test_a_second_run_on_one_output_folder_is_refused(tmp_path):
    with exclusive_folder(tmp_path, "predict"):
        with pytest.raises(InputError, match="another ctcnet predict"):
            with exclusive_folder(tmp_path, "predict"):
                pass
    with exclusive_folder(tmp_path, "predict"):  # released after the first run
        pass


def test_a_folder_the_run_made_and_wrote_nothing_in_is_not_left_behind(tmp_path):
    """An input set aside before its first output: no empty folder holding a lock is left;
    a folder written to, or there before the run, stays."""
    with exclusive_folder(tmp_path / "set_aside", "predict"):
        pass
    with exclusive_folder(tmp_path / "written", "predict"):
        atomic_write_text(tmp_path / "written" / "summary.json", "{}")
    (tmp_path / "there").mkdir()
    with exclusive_folder(tmp_path / "there", "predict"):
        pass
    assert not (tmp_path / "set_aside").exists()
    assert (tmp_path / "written" / "summary.json").is_file() and (tmp_path / "there").is_dir()


def test_the_refusal_names_the_holder_and_a_brief_writer_is_waited_for(tmp_path):
    import threading
    import time

    with exclusive_folder(tmp_path, "review"):
        with pytest.raises(InputError, match=rf"another ctcnet review \(pid {os.getpid()} on "):
            with exclusive_folder(tmp_path, "predict"):
                pass
    # The review server's save holds the folder for moments: predict waits for it...
    held, release = threading.Event(), threading.Event()

    def review_save():
        with exclusive_folder(tmp_path, "review"):
            held.set()
            release.wait(5)

    saver = threading.Thread(target=review_save)
    saver.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    with exclusive_folder(tmp_path, "predict", wait_s=10, wait_for=("review",)):
        assert release.is_set()
    saver.join()
    # ...but not for another predict, which holds it for the whole run.
    with exclusive_folder(tmp_path, "predict"):
        t0 = time.monotonic()
        with pytest.raises(InputError, match="another ctcnet predict"):
            with exclusive_folder(tmp_path, "predict", wait_s=10, wait_for=("review",)):
                pass
        assert time.monotonic() - t0 < 5


def test_a_filesystem_that_cannot_lock_runs_unlocked_with_a_warning(tmp_path, monkeypatch,
                                                                     caplog):
    """NFS without lockd answers flock with ENOLCK: that is no other run holding the folder,
    and refusing would set every cartridge of a night aside with a false reason."""
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    ran = False
    with caplog.at_level("WARNING"), exclusive_folder(tmp_path, "predict"):
        ran = True
    assert ran and any("cannot lock folders" in r.getMessage() for r in caplog.records)


def test_files_written_from_many_threads_keep_the_umask(tmp_path):
    import threading

    from ctcnet.io.atomic import atomic_path

    tmp_path.chmod(0o755)  # (pytest's are 0700: a new file is no more open than its folder)
    before = os.umask(0o022)
    try:
        def write(k):
            for i in range(200):
                with atomic_path(tmp_path / f"{k}_{i}.txt") as tmp:
                    tmp.write_text("x")

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert os.umask(0o022) == 0o022
        assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644}
    finally:
        os.umask(before)


def test_a_file_written_again_keeps_its_own_permissions(tmp_path):
    from ctcnet.io.atomic import atomic_write_text

    tmp_path.chmod(0o755)
    before = os.umask(0o077)  # a lab's private folder: predict writes 0600
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
        os.umask(0o022)  # the review server, started under another umask, rewrites it
        atomic_write_text(tmp_path / "summary.json", "{ }")
        atomic_write_text(tmp_path / "new.json", "{}")
    finally:
        os.umask(before)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644  # a new file: the umask's


def test_a_new_file_is_no_more_open_than_its_folder(tmp_path):
    """A sample folder predict wrote 0750 under a lab's umask of 027: the review server,
    started under 022, made review.csv and the sign-off 0644 beside 0640 outputs."""
    from ctcnet.io.atomic import atomic_write_text, open_own

    sample = tmp_path / "S1"
    sample.mkdir()
    sample.chmod(0o750)
    before = os.umask(0o022)
    try:
        atomic_write_text(sample / "signoff.json", "{}")
        with open_own(sample / "review.csv", "a") as journal:
            journal.write("x\n")
    finally:
        os.umask(before)
    assert (sample / "signoff.json").stat().st_mode & 0o777 == 0o640
    assert (sample / "review.csv").stat().st_mode & 0o777 == 0o640


def test_the_temporaries_a_killed_writer_left_are_removed_and_nothing_else(tmp_path):
    import tempfile

    from ctcnet.io.atomic import remove_stale_temporaries

    (tmp_path / "parts").mkdir()
    keep = [tmp_path / "events.csv", tmp_path / ".ctcnet.lock", tmp_path / ".tmp_notes",
            tmp_path / "parts" / "r00c00.parquet", tmp_path / ".events.csv.keep"]
    for path in keep:
        path.write_text("x")
    # Named as atomic_path names them: a writer killed before its rename leaves these.
    stale = [tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + p.suffix, dir=p.parent)[1]
             for p in (tmp_path / "events.csv", tmp_path / "parts" / "r00c00.parquet")]
    assert remove_stale_temporaries(tmp_path) == 2
    assert not any(os.path.exists(p) for p in stale) and all(p.exists() for p in keep)


def test_a_write_that_fails_without_a_file_name_is_named_and_leaves_nothing(tmp_path):
    import errno

    from ctcnet.io.atomic import atomic_path

    target = tmp_path / "events.parquet"
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.EFBIG, "File too large")
    assert info.value.errno == errno.EFBIG and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
    # One naming the temporary file (a folder made read-only mid-run): named by its output,
    # not by ".events.parquet.n95rrvv2.tmp.parquet".
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert info.value.errno == errno.EACCES and info.value.filename == str(target)


def test_outputs_written_together_are_taken_back_together(tmp_path):
    """A failure at the third file removes the two written and the folders made for them;
    a folder that was there, and a file not written by the block, stay."""
    kept = tmp_path / "kept.txt"
    kept.write_text("earlier")
    made = tmp_path / "out" / "geojson"
    with pytest.raises(OSError, match="No space"):
        with written_together([tmp_path, tmp_path / "out", made]) as written:
            for name in ("a.geojson", "b.geojson"):
                atomic_write_text(made / name, "{}")
                written.append(made / name)
            raise OSError(28, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]
    with written_together([made]) as written:  # a block that succeeds keeps what it wrote
        atomic_write_text(made / "a.geojson", "{}")
        written.append(made / "a.geojson")
    assert (made / "a.geojson").read_text() == "{}"


def test_an_earlier_output_being_replaced_is_put_back_whole_when_the_block_fails(tmp_path):
    """One file written over, one removed, one left alone, then a failure: each as it was,
    and nothing kept aside left behind; on success the copies aside are gone."""
    folder = tmp_path / "geojson"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.geojson").write_text(f"old {name}")
    earlier = sorted(folder.glob("*.geojson"))
    with pytest.raises(OSError, match="No space"):
        with written_together([folder], earlier) as written:
            atomic_write_text(folder / "a.geojson", "new")
            written.append(folder / "a.geojson")
            (folder / "c.geojson").unlink()  # an earlier export's frame this one lacks
            raise OSError(28, "No space left on device")
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "a.geojson": "old a", "b.geojson": "old b", "c.geojson": "old c"}
    with written_together([folder], earlier) as written:
        atomic_write_text(folder / "a.geojson", "new")
    assert sorted(p.name for p in folder.iterdir()) == ["a.geojson", "b.geojson", "c.geojson"]


def test_a_lock_or_journal_planted_as_a_link_is_refused_and_its_target_untouched(tmp_path):
    """A symbolic link at a results folder's .ctcnet.lock (anyone who may write a shared
    results area could plant one) had the lock truncate and write the file it points to."""
    from ctcnet.errors import OutputFolderError
    from ctcnet.io.atomic import open_own

    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT\n")
    folder = tmp_path / "out" / "S1"
    folder.mkdir(parents=True)
    (folder / ".ctcnet.lock").symlink_to(victim)
    with pytest.raises(OutputFolderError, match="symbolic link"):
        with exclusive_folder(folder, "predict"):
            pass
    (folder / "frames_read.jsonl").symlink_to(victim)
    for mode in ("a", "a+", "r+b"):
        with pytest.raises(OutputFolderError, match="symbolic link"):
            open_own(folder / "frames_read.jsonl", mode)
    assert victim.read_text() == "IMPORTANT\n"
    with open_own(folder / "own.jsonl", "a", encoding="utf-8") as fh:  # a file of its own
        fh.write("x\n")
    assert (folder / "own.jsonl").read_text() == "x\n"


def test_an_output_path_too_long_for_the_files_under_it_is_refused_before_any_work(tmp_path):
    """Near PATH_MAX the last table written failed (a traceback, after the work, run.json
    saying the same command resumes it); a folder name past 255 bytes failed at its stat."""
    import os

    from ctcnet.errors import InputError
    from ctcnet.io.atomic import check_output_path

    deep = tmp_path.joinpath(*["d" * 200] * ((4096 - len(os.fsencode(tmp_path))) // 201))
    with pytest.raises(InputError, match=r"the path is \d+ bytes long: the files a run writes "
                                         r"under it need up to 400 more"):
        check_output_path(deep)
    with pytest.raises(InputError, match=r"a folder name in it is 300 bytes long, past the 255"):
        check_output_path(tmp_path / ("y" * 300) / "out")
    check_output_path(tmp_path / "fine")


def test_in_a_folder_a_group_shares_what_ctcnet_makes_is_the_groups(tmp_path):
    """A results folder shared by a service account and reviewers (setgid, group-writable):
    a reviewer under a umask of 022 made review.csv 0644, and the next reviewer's decision
    was refused; a service account under 027 made sample folders no reviewer could write."""
    from ctcnet.core.file_modes import make_folder
    from ctcnet.io.atomic import atomic_write_text, open_own

    shared, plain = tmp_path / "shared", tmp_path / "plain"
    shared.mkdir()
    plain.mkdir()
    shared.chmod(0o2770)
    plain.chmod(0o770)
    before = os.umask(0o027)
    try:
        make_folder(shared / "S1" / "gallery")
        make_folder(plain / "S1")
        os.umask(0o022)
        for folder in (shared / "S1", plain / "S1"):
            atomic_write_text(folder / "signoff.json", "{}")
            with open_own(folder / "review.csv", "a") as journal:
                journal.write("x\n")
    finally:
        os.umask(before)
    for folder in (shared / "S1", shared / "S1" / "gallery"):
        assert folder.stat().st_mode & 0o2070 == 0o2070
    assert (plain / "S1").stat().st_mode & 0o7777 == 0o750  # no group's: the umask's
    for name in ("signoff.json", "review.csv"):
        assert (shared / "S1" / name).stat().st_mode & 0o777 == 0o660
        assert (plain / "S1" / name).stat().st_mode & 0o777 == 0o640


def test_a_folder_made_before_its_folder_was_shared_is_shared_when_used_again(tmp_path,
                                                                              caplog):
    """The service account's sample folder, made 0755 before the lab shared the results
    folder: the next run's make_folder shares it (and gives it the folder's group), said;
    one already shared, or in a folder nobody shares, is left as it is."""
    from ctcnet.core.file_modes import make_folder

    shared, plain = tmp_path / "shared", tmp_path / "plain"
    for root in (shared, plain):
        (root / "S1").mkdir(parents=True)
        (root / "S1").chmod(0o755)
    shared.chmod(0o2770)  # shared since
    with caplog.at_level("INFO", logger="ctcnet.core.file_modes"):
        make_folder(shared / "S1")
        make_folder(plain / "S1")
    assert (shared / "S1").stat().st_mode & 0o7777 == 0o2775
    assert (shared / "S1").stat().st_gid == shared.stat().st_gid
    assert (plain / "S1").stat().st_mode & 0o7777 == 0o755
    assert caplog.text.count("made before the folder was shared") == 1
    caplog.clear()
    with caplog.at_level("INFO", logger="ctcnet.core.file_modes"):
        make_folder(shared / "S1")  # shared now: nothing to say
    assert "made before" not in caplog.text


def test_a_lock_or_journal_another_account_made_is_still_used(tmp_path, monkeypatch):
    """One this account may not write (another reviewer's, 0640): the lock is taken on it
    read-only, and a line is appended by writing the journal again whole."""
    import fcntl

    from ctcnet.io import atomic

    real = atomic.open_own

    def not_writable(path, mode, encoding=None):
        if mode != "r" and Path(path).exists():
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, mode, encoding)

    (tmp_path / ".lock").write_text("")
    (tmp_path / "history.jsonl").write_bytes(b"one\n")
    tmp_path.chmod(0o2770)
    monkeypatch.setattr(atomic, "open_own", not_writable)
    with atomic.open_lock(tmp_path / ".lock") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    atomic.append_synced(tmp_path / "history.jsonl", b"two\n")
    assert (tmp_path / "history.jsonl").read_bytes() == b"one\ntwo\n"
    # Written again, it is the group's: the next account appends to it in place.
    assert (tmp_path / "history.jsonl").stat().st_mode & 0o060 == 0o060
    with atomic.open_lock(tmp_path / ".new.lock") as fh:  # one not there is made
        assert fh.writable()


def test_a_group_writable_folder_without_setgid_is_said_to_share_nothing(tmp_path):
    """A results folder 0770 of the lab's group, not setgid: the service account's files took
    its own group and no reviewer could read them; predict says so, naming the cure."""
    from ctcnet.core.file_modes import group_unshared_text

    other = next((g for g in (65534, *os.getgroups()) if g != os.getegid()), None)
    try:
        os.chown(tmp_path, -1, other)
    except (OSError, TypeError):
        pytest.skip("no other group to give the folder to")
    tmp_path.chmod(0o770)
    assert "chmod g+s" in group_unshared_text(tmp_path)
    tmp_path.chmod(0o2770)
    assert group_unshared_text(tmp_path) is None  # shared: its files take its group
    tmp_path.chmod(0o750)
    assert group_unshared_text(tmp_path) is None  # not the group's to write


def test_an_append_cut_short_is_taken_back_and_a_torn_last_line_kept_apart(tmp_path,
                                                                            monkeypatch):
    """A full disk (or a file-size limit) cutting a journal's append leaves the journal as it
    was: no half line that the next append would join (a sign-off history so read its next
    sign-off as edited since). A last line a killed writer left unended gets the next one on
    a line of its own."""
    import errno

    from ctcnet.io import atomic

    history = tmp_path / "history.jsonl"
    history.write_bytes(b'{"one":1}\n')
    real_write = os.write

    def disk_fills(fd, data):
        real_write(fd, data[:5])
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(atomic.os, "write", disk_fills)
    with pytest.raises(OSError, match="too large"):
        atomic.append_synced(history, b'{"two":2}\n')
    assert history.read_bytes() == b'{"one":1}\n'
    monkeypatch.setattr(atomic.os, "write", real_write)
    atomic.append_synced(history, b'{"two":2}\n')
    assert history.read_bytes() == b'{"one":1}\n{"two":2}\n'
    history.write_bytes(b'{"one":1}\n{"tw')  # a writer killed in its line
    atomic.append_synced(history, b'{"three":3}\n')
    assert history.read_bytes().splitlines()[-1] == b'{"three":3}'


def test_a_path_through_a_link_and_up_is_written_where_the_disk_reads_it(tmp_path):
    """`link/..` is the folder above the link's target, as the kernel reads it; the temporary
    file was made where the text reads it (beside the link, in a folder not there: predict
    --out "$SCANS/../results", with $SCANS a link to a share, ended in a traceback)."""
    (tmp_path / "share" / "scans").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "share" / "scans")
    atomic_write_text(tmp_path / "link" / ".." / "results" / "run.json", "{}\n")
    assert (tmp_path / "share" / "results" / "run.json").read_text() == "{}\n"
    assert not (tmp_path / "results").exists()


def test_a_write_cut_short_without_an_error_number_is_said_as_the_disk_full(tmp_path):
    """numpy's tofile (tifffile's writer) says a write cut short by a full disk or a file-size
    limit with no error number ("32000 requested and 12744 written"): crops and simulate ended
    in a traceback there, where a numbered one is the machine's state, said in one line."""
    import errno

    from ctcnet.io.atomic import atomic_path

    with pytest.raises(OSError) as raised, atomic_path(tmp_path / "crop.tif"):
        raise OSError("32000 requested and 12744 written")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(
        tmp_path / "crop.tif")
    assert "cut short" in str(raised.value) and not list(tmp_path.iterdir())


def test_a_folder_where_a_file_goes_is_refused_by_name(tmp_path):
    """run.json or samples.csv made a folder ended a batch in an IsADirectoryError traceback;
    a link standing at a file is replaced itself (its target untouched), as before."""
    from ctcnet.io.atomic import own_folder

    (tmp_path / "run.json").mkdir()
    with pytest.raises(InputError, match="run.json: is a folder where ctcnet writes a file"):
        atomic_write_text(tmp_path / "run.json", "{}")
    target = tmp_path / "target.txt"
    target.write_text("kept")
    (tmp_path / "linked.txt").symlink_to(target)
    atomic_write_text(tmp_path / "linked.txt", "new")
    assert target.read_text() == "kept" and not (tmp_path / "linked.txt").is_symlink()
    # A folder ctcnet writes and deletes in: a link or a file there is refused, never followed.
    (tmp_path / "parts").symlink_to(tmp_path / "run.json")
    (tmp_path / "gallery").write_text("")
    for name, kind in (("parts", "a link"), ("gallery", "a file")):
        with pytest.raises(InputError, match=f"{name}: is {kind}, not a folder: ctcnet keeps "
                                             "the tiles there"):
            own_folder(tmp_path / name, "the tiles")
    assert own_folder(tmp_path / "new", "the tiles").is_dir()
