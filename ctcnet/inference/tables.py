"""The event tables of a predict run: each frame's events labelled with the model's calls
(:func:`label_events`), and the run's ``events.parquet`` and ``events.csv`` streamed from the
journal (:func:`write_tables`) while only the columns the summary and the report read stay in
memory (:class:`ColumnKeeper`), so memory does not grow with the cartridge.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ctcnet.core.columns import with_columns
from ctcnet.detect.detection import empty_event_table
from ctcnet.io.atomic import atomic_path
from ctcnet.io.cartridge_info import output_format
from ctcnet.io.scan import Cartridge
from ctcnet.io.unread_planes import unread_planes
from ctcnet.nn.calls import COUNTED_CLASSES, FAILED_CLASS, calls_from_proba, filed_by_prior
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)

# The columns of the probabilities the review band read where they are not the calls' own.
BAND_PREFIX = "fused_p_"
# The column marking a call that another, counted class outweighs before the decision rule's
# prior (filed_by_prior_of): shown for that reason, and said so in the review list.
FILED_BY_PRIOR = "filed_by_prior"


def label_events(events: pd.DataFrame, proba: np.ndarray, spec: ModelSpec,
                 edge_cut_class: str | None = None, band_proba: np.ndarray | None = None
                 ) -> pd.DataFrame:
    """Attach class, per-class probabilities, confidence and the review flag (vectorised).

    ``model_class`` is the model's own call. ``class`` is the same, except that with
    ``edge_cut_class`` an event cut by the frame border gets that class: only intact cells
    count as CTCs (CellSearch rule), and a reviewer files an edge-cut object as debris. A CTC
    or cluster call so filed is shown (:func:`cut_counted_of`): detection reads a whole cell
    that touches the border as cut, and a person tells the two apart. A row
    of non-finite probabilities is no call (``ctcnet.nn.calls``): class ``failed``, reviewed.
    ``band_proba``: the probabilities the review band reads, if not ``proba`` (a cartridge's
    marker fusion); written as the ``fused_p_<class>`` columns. The doubt queued is about the
    model's reported classes (``spec.taxonomy.reported_classes()``: ctc and cluster, or a
    lab's own).
    """
    counted = spec.taxonomy.reported_classes()
    called, confidence, review, failed = calls_from_proba(proba, spec.class_names,
                                                          spec.review_threshold, spec.decision,
                                                          band_proba, counted)
    if failed.any():
        log.warning("%d of %d events have non-finite probabilities: marked %r and sent to "
                    "review", int(failed.sum()), len(failed), FAILED_CLASS)
    # The new columns gathered first and joined in one step: a pandas column write per column
    # (a dozen a frame) cost more than the calls themselves.
    new = {"model_class": pd.Series(called, index=events.index, dtype=object)}
    new["class"] = new["model_class"]
    if edge_cut_class is not None and "edge_cut" in events and len(events):
        edge = events["edge_cut"].to_numpy(bool) & ~failed
        new["class"] = np.where(edge, edge_cut_class, called)
        review = review | (edge & np.isin(called, counted) & (edge_cut_class not in counted))
    for k, name in enumerate(spec.class_names):
        new[f"p_{name}"] = proba[:, k].astype(np.float32)
    if band_proba is not None:
        for k, name in enumerate(spec.class_names):
            new[f"{BAND_PREFIX}{name}"] = np.asarray(band_proba)[:, k].astype(np.float32)
    new["confidence"] = confidence
    new["review"] = review
    new[FILED_BY_PRIOR] = filed_by_prior(proba if band_proba is None else band_proba,
                                         called, spec.class_names, spec.decision,
                                         counted=counted)
    return with_columns(events, new)


def cut_counted_of(events: pd.DataFrame, counted: Sequence[str] = COUNTED_CLASSES
                   ) -> np.ndarray:
    """Bool per event of a labelled table: shown, filed as an uncounted class because the
    frame border cuts it, where the network calls it a ``counted`` class (a CTC or cluster:
    :func:`label_events` shows it for that alone) or finds one the likeliest before the prior
    (shown for that too, :data:`FILED_BY_PRIOR`): a person decides whether the cell is whole
    enough to count."""
    if not len(events) or not {"edge_cut", "model_class", "review"} <= set(events):
        return np.zeros(len(events), bool)
    model_counted = np.isin(events["model_class"].astype(object).to_numpy(), counted)
    by_prior = events[FILED_BY_PRIOR].fillna(False).to_numpy(bool) if FILED_BY_PRIOR in events \
        else np.zeros(len(events), bool)
    return (events["review"].to_numpy(bool) & events["edge_cut"].fillna(False).to_numpy(bool)
            & (model_counted | by_prior)
            & ~np.isin(events["class"].astype(object).to_numpy(), counted))


def band_proba_of(events: pd.DataFrame, class_names) -> np.ndarray | None:
    """The probabilities a labelled table's review band read (its ``fused_p_<class>``
    columns), or None where the band read the calls' own."""
    columns = [f"{BAND_PREFIX}{n}" for n in class_names]
    if not all(c in events for c in columns):
        return None
    return events[columns].to_numpy(np.float32)


def before_prior_of(events: pd.DataFrame, class_names) -> tuple[np.ndarray | None, np.ndarray]:
    """What the calls' rule read of a labelled table before its prior: the probabilities the
    review band and :func:`ctcnet.nn.calls.filed_by_prior` read (:func:`band_proba_of`, else
    the ``p_<class>`` columns; None without either) and the rule's own calls (``model_class``,
    else ``class``)."""
    proba = band_proba_of(events, class_names)
    if proba is None:
        columns = [f"p_{n}" for n in class_names]
        if len(events) and all(c in events for c in columns):
            proba = events[columns].to_numpy(np.float32)
    calls = events["model_class" if "model_class" in events else "class"].to_numpy(object)
    return proba, calls


def filed_by_prior_of(events: pd.DataFrame, spec=None) -> np.ndarray:
    """Bool per event of a labelled table: the calls' rule showed it because the prior alone
    filed it as it is, a counted class likelier before it
    (:func:`ctcnet.nn.calls.filed_by_prior`, under ``spec.decision``). Read off the
    :data:`FILED_BY_PRIOR` column where the table has one (a run's events,
    :func:`label_events`), else on the probabilities the review band read
    (``fused_p_<class>``) or the ``p_<class>`` columns, with ``model_class`` (else ``class``)
    as the rule's call; without a ``spec``, none but the column's."""
    if FILED_BY_PRIOR in events:
        return events[FILED_BY_PRIOR].fillna(False).to_numpy(bool)
    if spec is None:
        return np.zeros(len(events), bool)
    names = list(spec.class_names)
    proba, calls = before_prior_of(events, names)
    if proba is None:
        return np.zeros(len(events), bool)
    return filed_by_prior(proba, calls, names, spec.decision,
                          counted=spec.taxonomy.reported_classes())


def empty_frame_table(cartridge: Cartridge) -> pd.DataFrame:
    """A frame's events table with no rows and every column of one: what the tables are
    written from when a cartridge has no events at all."""
    table = empty_event_table(cartridge.panel).assign(
        **{f"mean_{name}": np.zeros(0, np.float32) for _, name in unread_planes(cartridge)})
    for col, dtype in (("frame_id", object), ("col", "int64"), ("row", "int64"),
                       ("frame", "int64")):
        table.insert(0, col, pd.Series(dtype=dtype))
    table["padded"] = pd.Series(dtype=bool)
    return table


# What the summary, the ground-truth comparison and the report read of the events table: the
# one table predict keeps in memory after the frame loop (a few bytes per event).
SUMMARY_COLUMNS = ("event_id", "frame", "frame_id", "row", "col", "x", "y", "edge_cut",
                   "model_class", "class", "confidence", "review", "guard", "markers_ctc",
                   "markers_vouch", FILED_BY_PRIOR, "cluster_partner",
                   "peak_snr",  # (how faint the sample is: sample_checks.faint_problem)
                   "area_um2",  # (a frame out of focus: sample_checks.blurred_frames_problem)
                   # (a plane dark on a frame: sample_checks.dark_planes_problem)
                   "ck_peak", "ck_area_um2", "dna_in_ck")
ROWS_PER_GROUP = 16384  # parquet row group: thousands of rows (one frame holds hundreds)


def write_tables(out_dir: Path, tables: Iterable[pa.Table | pd.DataFrame],
                 keep: Iterable[str] = SUMMARY_COLUMNS) -> pd.DataFrame:
    """Stream tables (scan order; at least one) into events.parquet and events.csv, each written
    atomically, numbering ``event_id`` across them; return only the ``keep`` columns of every
    row, strings as categoricals.

    The tables are assembled once, as Arrow columns, a row group at a time: each row group is
    written to the Parquet file and the same columns are rendered into the CSV (as pandas'
    ``to_csv(float_format="%.5g")`` writes them, without a pandas table). The whole table is
    never held: a cartridge of a million events is written a row group at a time, so memory
    does not grow with the cartridge beyond the returned columns.
    """
    kept, pending, rows, offset, names = ColumnKeeper(keep), [], 0, 0, None
    left_out: set[str] = set()  # columns of some frames the first frame's lack
    with atomic_path(out_dir / "events.parquet") as parquet_tmp, \
            atomic_path(out_dir / "events.csv") as csv_tmp, open(csv_tmp, "wb") as csv:
        writer = None

        def flush():
            nonlocal writer, rows
            if not pending:
                return
            if writer is None:
                schema = parquet_schema(pending[0])
                writer = pq.ParquetWriter(parquet_tmp, schema)
                csv.write(csv_header(schema.names))
            # Frames may differ in a column's string type (pandas object or str): one schema.
            block = pa.concat_tables([table.cast(writer.schema) for table in pending])
            writer.write_table(block)
            write_csv_rows(csv, block)
            pending.clear()
            rows = 0

        try:
            for table in tables:
                if isinstance(table, pd.DataFrame):
                    table = pa.Table.from_pandas(table, preserve_index=False)
                ids = pa.array(np.arange(offset, offset + len(table), dtype=np.int64))
                table = table.add_column(0, "event_id", ids)
                names = names or table.column_names
                left_out.update(n for n in table.column_names if n not in names)
                table = same_columns(table, names)
                kept.add(table)
                pending.append(table)
                offset += len(table)
                rows += len(table)
                if rows >= ROWS_PER_GROUP:
                    flush()
            flush()
        finally:
            if writer is not None:
                writer.close()
    if left_out:  # said once a table, not once a frame
        log.warning("events table: column(s) %s of some frames left out (their other frames, "
                    "read by another version, lack them)", sorted(left_out))
    return kept.table()


def same_columns(table: pa.Table, names: list[str]) -> pa.Table:
    """``table`` with the columns ``names`` in that order: one it lacks as empty values, one
    it has beyond them left out (a journal's frames from software that measured other planes:
    one file has one set of columns)."""
    if table.column_names == names:
        return table
    return pa.table({n: table.column(n) if n in table.column_names else
                     pa.nulls(len(table)) for n in names})


def parquet_schema(table: pa.Table) -> pa.Schema:
    """The events file's schema: ``table``'s columns, with the pandas metadata of the table as a
    whole (a journal part's describes the part, without ``event_id``), so the file reads back
    into pandas with the dtypes it was written from, and the output format
    (:func:`with_output_format`)."""
    return with_output_format(pa.Schema.from_pandas(table.slice(0, 0).to_pandas(),
                                                    preserve_index=False))


# The key of a table file's metadata naming its layout (ctcnet.io.cartridge_info.output_format).
FORMAT_KEY = b"ctcnet"


def with_output_format(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the output format recorded in its metadata (:data:`FORMAT_KEY`: JSON
    of ``format_version`` and ``ctcnet_version``), as run.json and summary.json record it."""
    return schema.with_metadata({**(schema.metadata or {}),
                                 FORMAT_KEY: json.dumps(output_format()).encode()})


# Columns written in full in events.csv: an event's position, from which a crop is cut again
# (rounded to 5 digits, y 287.497 read 287.5 and rounded to the next pixel: 16 of 844 events
# of a cartridge cut a pixel off, their probabilities 0.16 apart).
CSV_EXACT_COLUMNS = ("x", "y")


def csv_header(names: Sequence[str]) -> bytes:
    """events.csv's header line: each column's name quoted where it must be, as its values
    are (a plane named ``HER2 (clone 4D5, lot 7)`` made a header of more fields than its
    rows, and every column after it read under another's name)."""
    import csv as csv_module

    line = io.StringIO()
    csv_module.writer(line, lineterminator="\n").writerow(names)
    return line.getvalue().encode()


def write_csv_rows(csv: BinaryIO, block: pa.Table) -> None:
    """Append ``block`` to an events.csv, rendered as pandas' ``to_csv(index=False,
    header=False, float_format="%.5g")`` renders it (floats to 5 significant digits, missing
    values empty, booleans True/False, strings quoted only where they must be), from its Arrow
    columns; the positions (:data:`CSV_EXACT_COLUMNS`) as the shortest text that reads back
    as their value."""
    columns = []
    for name, column in zip(block.column_names, block.columns):
        if pa.types.is_floating(column.type) and name in CSV_EXACT_COLUMNS:
            column = pc.cast(column.cast(pa.float64()), pa.string())
        elif pa.types.is_floating(column.type):
            column = format_g5(column.to_numpy())
        elif pa.types.is_boolean(column.type):
            column = pc.if_else(column, "True", "False")
        columns.append(column)
    text = pa.table(columns, names=block.column_names)
    rendered = io.BytesIO()  # whole, so a refused value leaves no half block in the file
    try:  # no value needs quotes (frame ids, calls, flags): none is quoted, as pandas does
        pacsv.write_csv(text, rendered, pacsv.WriteOptions(include_header=False,
                                                           quoting_style="none"))
    except pa.ArrowInvalid:  # a comma or quote in a value: pandas' quoting of just those
        rendered = io.BytesIO()
        text.to_pandas().to_csv(rendered, index=False, header=False)
    csv.write(rendered.getbuffer())


def format_g5(values: np.ndarray) -> pa.Array:
    """Floats as ``"%.5g" % value`` writes them, missing values as nulls (empty in the CSV).

    Between 1e-4 and 1e5, where ``%g`` writes no exponent, each value is rounded to 5
    significant digits and written as the shortest text that reads back as it (Arrow's float
    to string cast): the same text, at a fraction of the cost of formatting each value in
    Python. Values outside that range, and the few whose rounding falls within float error of a
    tie (where rounding the scaled value could differ from rounding the exact one), are
    formatted by ``%.5g`` itself.
    """
    values = values.astype(np.float64)
    size = np.abs(values)
    plain = (size >= 1e-4) & (size < 99999.5)  # False for NaN and inf
    x = values[plain]
    digits = 4 - np.floor(np.log10(np.abs(x))).astype(np.int64)
    scale = 10.0 ** np.abs(digits)
    # Scaled up by an exact power of ten (or down by one), so the rounded value divided back is
    # the double nearest its 5-digit decimal, whose shortest text is that decimal.
    scaled = np.where(digits >= 0, x * scale, x / scale)
    rounded = np.round(scaled)
    near_tie = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) < 1e-6
    out = values.copy()
    out[plain] = np.where(digits >= 0, rounded / scale, rounded * scale)
    missing = np.isnan(values)
    text = pc.cast(pa.array(out, mask=missing), pa.string())
    by_printf = ~plain & ~missing
    by_printf[np.flatnonzero(plain)[near_tie]] = True
    if by_printf.any():
        printed = pa.array(np.char.mod("%.5g", values[by_printf]).tolist(), pa.string())
        text = pc.replace_with_mask(text, pa.array(by_printf), printed)
    return text


class ColumnKeeper:
    """A few columns of many tables, gathered as plain arrays: strings become integer codes into
    one vocabulary per column (a handful of calls, flags and frame ids), so each kept event costs
    a few bytes. A list of a thousand small DataFrames (or of Python strings) would cost several
    times the data itself."""

    def __init__(self, names: Iterable[str]):
        self.names = list(names)
        self.arrays: dict[str, list[np.ndarray]] = {}
        self.vocabulary: dict[str, dict] = {}

    def add(self, table: pa.Table) -> None:
        """Keep the named columns of ``table`` (strings as codes into each column's vocabulary)."""
        for name in self.names:
            if name not in table.column_names:
                continue
            column = table.column(name).combine_chunks()
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                encoded = pc.dictionary_encode(column)  # a missing value has a null code
                vocabulary = self.vocabulary.setdefault(name, {})
                lookup = np.array([vocabulary.setdefault(u, len(vocabulary))
                                   for u in encoded.dictionary.to_pylist()] + [-1],
                                  dtype=np.int32)
                values = lookup[encoded.indices.fill_null(-1).to_numpy()]
            else:  # a copy: a view would keep the table's whole block of columns alive
                values = np.array(column.to_numpy(zero_copy_only=False), copy=True)
            self.arrays.setdefault(name, []).append(values)

    def table(self) -> pd.DataFrame:
        """The kept columns of every table added, in order; strings as categoricals."""
        out = {}
        for name, arrays in self.arrays.items():
            values = np.concatenate(arrays)
            if name in self.vocabulary:
                categories = list(self.vocabulary[name])
                values = pd.Categorical.from_codes(values, categories=categories)
            out[name] = values
        return pd.DataFrame(out)
