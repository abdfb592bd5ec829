"""ctcnet.core.provenance: a software record in words says what git could not tell."""

from ctcnet.core.provenance import software_text


def test_a_checkout_git_would_not_read_is_neither_clean_nor_modified_and_names_its_code():
    """git refuses a checkout another user owns (dubious ownership): ``modified`` is None,
    which read as a clean commit and dropped the code's digest."""
    base = {"ctcnet": "0.1.0", "commit": "25f1b45343eb" + "0" * 28, "code_sha256": "e155af" * 10}
    assert software_text({**base, "modified": None}) == \
        "ctcnet 0.1.0, commit 25f1b45343eb (modified: unknown), code e155afe155af"
    assert software_text({**base, "modified": True}) == \
        "ctcnet 0.1.0, commit 25f1b45343eb (modified), code e155afe155af"
    assert software_text({**base, "modified": False}) == "ctcnet 0.1.0, commit 25f1b45343eb"
    # A record written before the key was kept reads as before.
    assert software_text(base) == "ctcnet 0.1.0, commit 25f1b45343eb"


def test_a_checkout_another_account_owns_is_read(tmp_path, monkeypatch):
    """git refuses a checkout another account owns ("dubious ownership"), so every account but
    its owner read "modified: unknown"; its owner already controls the code run from it."""
    import os
    import shutil
    import subprocess

    import pytest

    from ctcnet.core import provenance

    if shutil.which("git") is None or os.geteuid() != 0:
        pytest.skip("needs git, and root to give the checkout to another account")
    repo = tmp_path / "checkout"
    (repo / "ctcnet").mkdir(parents=True)
    (repo / "ctcnet" / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "x"], check=True)
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 65534, 65534)
    monkeypatch.setattr(provenance, "_checkout", lambda: repo)
    provenance.checkout_modified.cache_clear()
    try:
        assert provenance.checkout_modified() is False
        (repo / "ctcnet" / "a.py").write_text("x = 2\n")
        provenance.checkout_modified.cache_clear()
        assert provenance.checkout_modified() is True
    finally:
        provenance.checkout_modified.cache_clear()
