"""ctcnet.core.columns.with_columns: the table ``table[name] = values`` one after another
would give (columns, order, dtypes, values), in one step."""

import numpy as np
import pandas as pd

from ctcnet.core.columns import with_columns


def one_by_one(table, new):
    table = table.copy()
    for name, values in new.items():
        table[name] = values
    return table


def test_with_columns_sets_what_column_writes_would():
    table = pd.DataFrame({"a": np.arange(4), "review": np.zeros(4, bool),
                          "frame_id": ["r00c00"] * 4}, index=[3, 1, 2, 0])
    new = {"guard": ["", "ck_dim", "", ""],                      # a list of strings
           "review": np.array([True, False, True, False]),       # already there: in place
           "call": pd.Series(np.array(["ctc", "wbc", "wbc", "debris"], object),
                             index=table.index, dtype=object),  # a Series keeps its dtype
           "p": np.linspace(0, 1, 4).astype(np.float32),
           "class": np.array(["ctc", "debris", "wbc", "wbc"])}
    got, want = with_columns(table, new), one_by_one(table, new)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
    assert "guard" not in table and not table["review"].any()  # the table given is unchanged


def test_with_columns_of_an_empty_table_and_of_nothing_new():
    table = pd.DataFrame({"a": np.zeros(0, np.int64)})
    new = {"p": np.zeros(0, np.float32), "c": np.array([], dtype="<U3")}
    pd.testing.assert_frame_equal(with_columns(table, new), one_by_one(table, new))
    full = pd.DataFrame({"a": [1, 2]})
    pd.testing.assert_frame_equal(with_columns(full, {}), full)
