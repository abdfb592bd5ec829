"""ctcnet.io.atomic: one run per output folder."""

import pytest

from ctcnet.errors import InputError
from ctcnet.io.atomic import exclusive_folder


def test_a_second_run_on_one_output_folder_is_refused(tmp_path):
    with exclusive_folder(tmp_path, "predict"):
        with pytest.raises(InputError, match="another ctcnet predict"):
            with exclusive_folder(tmp_path, "predict"):
                pass
    with exclusive_folder(tmp_path, "predict"):  # released after the first run
        pass
