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
