"""``ctcnet predict``: detect and classify every event of whole cartridges (or a crop dataset).

Outputs per cartridge under ``OUT/<sample_id>/``: events.csv, events.parquet, summary.json,
gallery/*.png, index.html and the resume journal parts/. Rerunning on the same OUT resumes.
Under ``torchrun`` the cartridges are shared across the processes (see
ctcnet.inference.distributed); ``--shard K/N`` shares them between the jobs of an array on
many machines, with no process group; ``--processes N`` between processes on this machine
(ctcnet.commands.predict_processes).
"""

from __future__ import annotations

import argparse
import contextlib

from ctcnet.commands.arg_types import decimal
from ctcnet.commands.models import say_model
from ctcnet.commands.outcome import outcome_lines, retallied, run_outcome, say_error
from ctcnet.commands.predict_index import (
    index_as_the_run_ended,
    index_at_the_end,
    index_of_an_ended_run,
    index_or_ended_in_place,
    index_said_ended_as_it_begins,
    own_share,
    resume_text,
    say_done_before_the_end,
)
from ctcnet.commands.predict_processes import (
    AUTO_PROCESS_MEMORY_GIB,
    INPUTS_OPTION,
    MAX_AUTO_PROCESSES,
    processes_to_run,
)
from ctcnet.commands.shared_options import (
    add_compensate_argument,
    add_network_calls_argument,
    add_pixel_size_argument,
    add_prior_argument,
)
from ctcnet.errors import InputError, check_device_name, stop_within
from ctcnet.inference.backend_registry import list_backends
from ctcnet.inference.distributed import distributed_context, env_info
from ctcnet.inference.distributed import shard as split
from ctcnet.inference.output_names import output_folder_of
from ctcnet.inference.run_index import (
    mark_run_started,
    note_set_aside,
    refusals_that_stand,
    write_run_index,
)
from ctcnet.io.input_lists import expand_list_files

HELP = "Detect and classify every event of whole cartridges (or a crop dataset)."


# What a workflow engine decides a retry by (docs/outputs.md, "Exit codes of ctcnet predict").
EPILOG = ("exit status: 0 every input has an output (partial samples included); 2 bad "
          "arguments or an input refused (fix the input); 3 a sample failed, no frame "
          "readable; 4 the machine's state (a full disk, a folder it may not write, out of "
          "memory: fix it and rerun, which resumes); 130, 143 and 129 interrupted, terminated "
          "or hung up (rerun to resume); 1 an input left without an output (--processes), "
          "else an unexpected error. docs/outputs.md says each in full")


def add_arguments(parser) -> None:
    """Add the options of ``ctcnet predict`` to its subparser."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="cartridge folder, folder of cartridges, list file, or crop dataset")
    parser.add_argument("--model", default=None,
                        help="a shipped model's name (see `ctcnet models`) or a .pt checkpoint "
                             "or .onnx file (default: the shipped model whose channels the "
                             "data has)")
    parser.add_argument("--model-sha256", default=None, metavar="HEX",
                        help="refuse to run unless the model is this one: the model file's "
                             "SHA-256 or the network's (summary.json's "
                             "run_fingerprint.model_sha256, the same for a checkpoint and its "
                             "fp32 ONNX export), at least its first 12 hex digits; pins a "
                             "validated model against an upgrade or a replaced file")
    parser.add_argument("--out", required=True,
                        help="output folder: a folder per cartridge (events.parquet, events.csv, "
                             "summary.json, the report index.html and its gallery) or crop "
                             "set (predictions.parquet, predictions.csv, summary.json, its "
                             "page), and run.json for the run; an earlier run there is "
                             "resumed")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--backend", choices=list_backends(), default=None,
                        help="inference backend (default: from the model file's suffix)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="crops per model call (default on a CPU: 8 with onnxruntime, 64 "
                             "with torch; 1024 on a GPU)")
    parser.add_argument("--workers", type=int, default=None,
                        help="frame reading/detection workers beside the model (default: "
                             "2 on a 2-3 core CPU, up to 8 to feed a GPU; 0: inline; each "
                             "takes about 55 MB more memory)")
    parser.add_argument("--frame-pool", choices=("auto", "processes", "threads"),
                        default="auto",
                        help="run the frame workers as processes (each its own Python "
                             "interpreter, crops handed over in shared memory) or threads; "
                             "auto: processes for cartridges of many frames on a machine of "
                             "4 cores or more, else threads (and for frames on a GPU)")
    parser.add_argument("--frame-device", default="auto",
                        help="where detection's whole-frame work and the cropping run: auto "
                             "(on the model's GPU when it runs on one, else numpy), numpy, or "
                             "a torch device: cuda, cuda:N (cpu runs the torch path on the CPU)")
    parser.add_argument("--threshold-snr", type=decimal, default=None,
                        help="detection threshold in noise units (default 5)")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard an earlier run's journal in OUT instead of resuming it")
    parser.add_argument("--list-outputs", action="store_true",
                        help="print each input's output folder (input, tab, folder; the "
                             "sample id cartridge.json gives, not the input's name) and exit "
                             "without running or writing: what a workflow engine declares")
    parser.add_argument("--allow-empty", action="store_true",
                        help="a folder that holds no scan tonight (a night without scans: "
                             "empty sample folders, a share's Thumbs.db, logs) is nothing to "
                             "do, exit 0, not a refusal; run.json says the run finished with "
                             "no output")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="take only share K of N of the inputs (1 <= K <= N; split by a "
                             "hash of each sample's name, so a cartridge added between jobs "
                             "moves no other: even in number on average, not balanced by "
                             "frames as torchrun's ranks are), for job arrays on many "
                             "machines, e.g. SLURM: --shard "
                             "$((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT")
    parser.add_argument("--processes", default="auto", metavar="N",
                        help="predict processes on this machine that share the inputs, each "
                             "on the same device (default auto: one per two cores, at most "
                             f"{MAX_AUTO_PROCESSES} and {AUTO_PROCESS_MEMORY_GIB:g} GiB of "
                             "available memory each, when the model runs on a GPU and there are "
                             "several inputs; one on a CPU, whose model takes every core)")
    # One child's share of a --processes run: a file naming its inputs (the parent's own
    # listing, dealt out by frames as torchrun's ranks are).
    parser.add_argument(INPUTS_OPTION, dest="process_inputs", default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument("--keep-edge-calls", action="store_true",
                        help="keep the model's call for events cut by the frame border "
                             "(default: file them as debris, since they are not intact)")

    add_prior_argument(parser)
    add_pixel_size_argument(parser)
    add_network_calls_argument(parser)
    parser.add_argument("--no-prevalence-rule", action="store_true",
                        help="the same as --prior balanced (kept for scripts that use it)")
    add_compensate_argument(parser, "the model sees every crop with")
    parser.add_argument("--no-report", action="store_true", help="skip gallery and HTML")
    parser.add_argument("--saliency", action=argparse.BooleanOptionalAction, default=False,
                        help="draw a per-channel saliency row under each gallery tile (loads "
                             "torch and the model's checkpoint for it; default: off, the review "
                             "server draws the row on demand, key s)")
    parser.add_argument("--report-overlap", action=argparse.BooleanOptionalAction, default=True,
                        help="with several cartridges, draw each one's report (gallery, "
                             "index.html) in a background worker while the next one's frames "
                             "run (default: on; --no-report-overlap: one after another; see "
                             "docs/predict.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary lines")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard K/N`` as (rank, world size): rank K - 1 of N; None without the option."""
    if text is None:
        return None
    k, sep, n = text.partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k = n = 0
    if not sep or not 1 <= k <= n:
        raise InputError(f"--shard is K/N with 1 <= K <= N (this job's share of N), got {text!r}")
    return k - 1, n


def run(args) -> int:
    """Run ``ctcnet predict``: detect and classify the events of each input and write tables,
    summary and reports, and a log of the run in ``--out/logs`` once it has begun; returns
    the exit status."""
    from ctcnet.core.run_log import run_log

    argv = getattr(args, "_argv", None)
    with run_log(args.out, "predict", ["ctcnet", *argv] if argv is not None else None) as log:
        status = _run(args, log)
        log.ended(status)
        return status


def _run(args, log) -> int:
    import time
    from pathlib import Path

    out = Path(args.out)
    child = args.process_inputs is not None  # one process of a --processes run
    # A stop, a refusal or an error before the run has checked its inputs and written its own
    # index (its imports too: a second of a busy node's): the earlier run's index is not left
    # reading "finished".
    with index_said_ended_as_it_begins(out, not child and args.shard is None
                                       and not args.list_outputs
                                       and env_info().world_size == 1):
        from ctcnet.inference.resources import cpu_cores, one_malloc_arena

        one_malloc_arena(cpu_cores())  # before the model or any thread allocates
        # the library: imported when the command runs (see ctcnet.commands)
        from ctcnet.commands.predict_outputs import output_names
        from ctcnet.inference.backends import load_backend
        from ctcnet.inference.inputs import resolve_inputs
        from ctcnet.inference.model_records import check_model_digest, model_line
        from ctcnet.inference.output_names import refuse_out_in_crop_folders
        from ctcnet.inference.predict import predict_inputs

        options = predict_options(args)
        inputs = _inputs(args, child, log)
        if not inputs:  # (--allow-empty, and no input holds a cartridge)
            return _nothing_to_do(args, out, log)
        cartridges, datasets = resolve_inputs(inputs)
        shard = parse_shard(args.shard)  # (refused before a model is chosen and named)
        if args.list_outputs:  # nothing read past the metadata, nothing written
            from ctcnet.commands.predict_outputs import list_outputs, model_panel

            return list_outputs(out, cartridges, datasets, shard,
                                model_panel(args, cartridges, datasets), args.pixel_size)
        refuse_out_in_crop_folders(out, datasets)
        if shard and env_info().world_size > 1:  # before a process group is waited for
            raise InputError("--shard splits the inputs between separate jobs, but WORLD_SIZE "
                             "is set (torchrun, or a job template's leftover): under torchrun "
                             "the processes split them already; unset WORLD_SIZE for a job "
                             "array")
        model = args.model if args.model is not None else \
            _model_for_inputs(args, inputs, cartridges, datasets)
        processes = 1 if child else processes_to_run(args, shard,
                                                     len(cartridges) + len(datasets))
    if processes > 1:
        # What one process says of its inputs as it lists them (a folder named twice, a
        # folder of cartridges' other subfolders): the children get the paths alone.
        resolve_inputs(inputs, say_skipped=True)
        return _run_in_processes(args, cartridges, datasets, processes, out, model, log)
    with distributed_context(args.device) as (info, device):
        rank, world_size = shard or (info.rank, info.world_size)
        started = time.time()  # what a sample set aside now is older than
        set_aside: dict[str, str] = {}  # a night's batch runs on past one bad cartridge
        failed_reports: dict[str, str] = {}  # ... and past one report that failed
        # run.json says "running" while this run is (not a job array's shares: each leaves it)
        indexing = info.is_main and not child
        names = output_names(cartridges, datasets)
        began = []  # the checks passed (a refusal writes no index): the index to leave

        def mark_started():
            log.open()
            if indexing and shard is None and info.world_size == 1:
                mark_run_started(out, names, started)  # run.json says "running"
            if indexing:
                began.append(True)

        try:
            backend = load_backend(model, args.backend, device, args.batch_size)
            if args.model_sha256 is not None:  # before any output: a refusal writes nothing
                check_model_digest(backend, args.model_sha256)
            log.note(model_line(backend))  # the log names the model as the summaries do
            if args.model is not None and not args.quiet and info.is_main and not child:
                say_model(args.model, spec=backend.spec)
            summaries = predict_inputs(inputs, out, backend, options, rank, world_size,
                                       split_by_name=shard is not None, set_aside=set_aside,
                                       failed_reports=failed_reports, share_of_several=child,
                                       on_start=mark_started)
            note_set_aside(out, set_aside, started)  # for the rank or job that writes run.json
        except BaseException as err:  # a signal, or an error that ends the run: what is done
            # (a --processes child's, for the index; a folder gone read-only refuses it, and
            # the error that ended the run is told, run.json not left reading "running")
            with contextlib.suppress(OSError):
                note_set_aside(out, set_aside, started)
            ended = stop_within(err) or err  # (a signal inside an import's error: stopped)
            mine = names if shard is None else split(  # as the inputs were split
                names, rank, world_size, key=output_folder_of)
            index_as_the_run_ended(out, bool(began), ended, indexing and shard is None
                                   and info.world_size == 1, lambda: index_of_an_ended_run(
                                       out, names, world_size, set_aside, started,
                                       failed_reports, ended, log, mine, shard is not None,
                                       args.overwrite))
            raise
    # One index of every output of the run: under torchrun once all ranks have finished; each
    # shard of a job array rewrites it as it ends, the last leaving the whole index.
    mine = shard and split(names, rank, world_size, key=output_folder_of)  # as list-outputs
    set_aside = own_share(set_aside, names, mine, summaries, args.shard)
    tally = indexing and info.world_size == 1  # (of a job array's share, its own)
    lines = outcome_lines(summaries, out, failed_reports, len(set_aside), tally=tally)
    for line in lines:  # in the log first: an index a full disk refuses loses none of them
        log.note(line)
    if indexing:  # a --processes parent writes it once all have ended
        standing = index_at_the_end(out, names, world_size, set_aside, started,
                                    failed_reports, shard is not None)
        lines = retallied(lines, summaries, out, failed_reports, len(set_aside),
                          len(standing), tally)
        set_aside = standing
    elif child:  # the parent's index says each; one another run holds is no refusal of this
        # run's to report (exit 2) where the run has several inputs: that run finishes it
        set_aside = {name: reason for name, reason in set_aside.items()
                     if getattr(reason, "kind", None) != "held"}
    return run_outcome(summaries, lines, set_aside, args.quiet, failed_reports, log)


def _model_for_inputs(args, inputs, cartridges, datasets) -> str:
    """The shipped model whose channels the data has, by name (said unless quiet)."""
    from ctcnet.inference.model_choice import choose_for_inputs, choose_for_most

    try:
        chosen = choose_for_inputs(cartridges, datasets, args.pixel_size, "the input data")
    except InputError:
        from ctcnet.inference.output_names import is_batch
        from ctcnet.nn.registry import DEFAULT_MODEL_NAME, get_model

        if not is_batch(inputs, cartridges, datasets):
            raise
        # The model that fits most inputs; where none opens or fits, the default (run.json says why)
        chosen = choose_for_most(cartridges, datasets, args.pixel_size) or \
            get_model(DEFAULT_MODEL_NAME)
    if not args.quiet:
        say_model(None, chosen.name)
    return chosen.name


def _inputs(args, child: bool, log) -> list:
    """The run's inputs, list files read (once, a cycle refused): a ``--processes`` child's
    share (said in its log), or the command line's; with ``--allow-empty``, the folders that
    hold nothing left out."""
    if child:
        import os

        from ctcnet.commands.predict_processes import PARENT_ENV, die_with_parent, read_share

        die_with_parent()  # a parent killed outright takes this process with it
        inputs = expand_list_files(read_share(args.process_inputs))
        # The log's command line names a share file deleted by the time anyone reads it.
        log.note(f"one process of the run of pid {os.environ.get(PARENT_ENV, '?')}; its share: "
                 + ", ".join(str(p) for p in inputs))
    else:
        inputs = expand_list_files(args.inputs)
    if args.allow_empty:
        from ctcnet.inference.inputs import without_empty_folders

        inputs = without_empty_folders(inputs)
    return inputs


def _nothing_to_do(args, out, log) -> int:
    """``--allow-empty`` and no input holds a cartridge: run.json says a run finished with no
    output (the samples an earlier run left stay listed); exit 0."""
    import sys
    import time

    from ctcnet.inference.inputs import check_writable

    said = (f"nothing to do: {', '.join(str(p) for p in args.inputs)} holds no cartridge "
            "(--allow-empty)")
    if args.list_outputs:  # a dry run lists nothing and writes nothing (it made --out and
        # wrote a finished index over the night's, its samples read as earlier outputs)
        if not args.quiet:
            print(said, file=sys.stderr)
        return 0
    check_writable(out)
    log.open()
    write_run_index(out, [], 1, since=time.time())
    log.note(said)
    if not args.quiet:
        print(said, file=sys.stderr)
    return 0


def predict_options(args):
    """The run's :class:`~ctcnet.inference.predict.PredictOptions` from the command line, its
    values checked first (one line naming the option)."""
    import math
    from dataclasses import replace

    from ctcnet.detect.detection import DetectConfig
    from ctcnet.inference.predict import PredictOptions
    from ctcnet.report import run_report
    from ctcnet.review_server.refresh import refresh_reviewed

    if args.batch_size is not None and args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be 0 (inline) or more, got {args.workers}")
    if args.threshold_snr is not None and not (math.isfinite(args.threshold_snr) and
                                               args.threshold_snr > 0):
        raise InputError(f"--threshold-snr must be a positive number of noise units, got "
                         f"{args.threshold_snr}")
    from ctcnet.nn.calls import BALANCED_PRIOR

    check_device_name(args.device)
    if args.frame_device != "numpy":  # a typo is the command's, not each cartridge's
        check_device_name(args.frame_device, "--frame-device", "numpy, ")
    prior = args.prior
    if args.no_prevalence_rule:
        if prior not in (None, BALANCED_PRIOR):
            raise InputError(f"--no-prevalence-rule is --prior {BALANCED_PRIOR}; it contradicts "
                             f"--prior {prior}")
        prior = BALANCED_PRIOR
    detect = DetectConfig()
    if args.threshold_snr is not None:
        detect = replace(detect, threshold_snr=args.threshold_snr,
                         extent_snr=min(detect.extent_snr, args.threshold_snr))
    options = PredictOptions(batch_size=args.batch_size,
                             workers=args.workers,
                             frame_device=args.frame_device, frame_pool=args.frame_pool,
                             detect=detect,
                             overwrite=args.overwrite, quiet=args.quiet,
                             report=None if args.no_report else run_report,
                             saliency=args.saliency, report_overlap=args.report_overlap,
                             compensate=args.compensate,
                             edge_cut_as=None if args.keep_edge_calls else "debris",
                             prior=prior, pixel_size=args.pixel_size,
                             marker_calls=not args.network_calls_only,
                             refresh_review=refresh_reviewed)
    return options


def _run_in_processes(args, cartridges, datasets, processes: int, out, model: str, log) -> int:
    """``--processes``: the inputs dealt out to child processes, each running ``model`` (the
    one named, or chosen here for the whole batch); run.json once all have ended; the exit
    status (1 where a process that failed left an input without an output)."""
    import logging
    import sys
    import time

    from ctcnet.commands.predict_processes import (
        SHARE_DONE,
        STOPPED,
        check_before_children,
        done_watcher,
        plan_shares,
        processes_error,
        run_in_processes,
        say_outcome,
        stopped_by_words,
    )

    # The parent's checks refuse as one process's do: the earlier index reads "failed".
    with index_said_ended_as_it_begins(out, env_info().world_size == 1):
        if args.model_sha256 is not None:  # before any child starts (each checks its own)
            from ctcnet.inference.backends import load_backend
            from ctcnet.inference.model_records import check_model_digest

            check_model_digest(load_backend(model, args.backend, "cpu"), args.model_sha256)
        check_before_children(model, args.backend, out, args.prior)
        names, shares, set_aside = plan_shares(cartridges, datasets, processes)
    watch = None
    if not args.quiet:
        running = [n for n in names if n not in set_aside]
        aside = f" ({len(set_aside)} more set aside)" if set_aside else ""
        print(f"{len(running)} inputs{aside} in {len(shares)} processes (--processes): a line "
              "as each is done, what each came to once all are", file=sys.stderr)
        watch = done_watcher(out, running, time.time())
    started = time.time()
    log.open()
    mark_run_started(out, names, started, len(shares))
    note_set_aside(out, set_aside, started)  # run.json lists them with the children's
    endings: dict[int, str] = {}  # what ended each process that failed (its log's words)
    status = run_in_processes(args._argv, shares, watch, model if args.model is None else None,
                              out, endings) if shares else 0
    # A process killed or failed leaves its share unfinished: the run failed, its samples say.
    failed = status not in STOPPED and status not in SHARE_DONE
    stopped_by = stopped_by_words(status)
    index = index_or_ended_in_place(
        out, "stopped" if stopped_by else "failed", names, len(shares), since=started,
        state="stopped" if stopped_by else "failed" if failed else "finished",
        missing_reason=f"its process ended with status {status} before writing it (see the "
                       "log); the same command resumes it" if failed else
        f"the run was stopped before its output was written; {resume_text(args.overwrite)}"
        if stopped_by else None,
        error=processes_error(status, endings) if failed else
        f"stopped by {stopped_by}" if stopped_by else None)
    missing = [e["name"] for e in index["outputs"] if e.get("missing")]
    if stopped_by and not missing:
        # The signal came as the last inputs were finished (a process ends on it after its
        # last output is written): every input has its output, so the night is complete and
        # said so, each input's outcome listed, not "stopped" beside a full set of results.
        index = index_or_ended_in_place(out, "stopped", names, len(shares), since=started)
        done = f"stopped by {stopped_by} once every input was done: nothing is left to resume"
        print(f"ctcnet predict: {done}", file=sys.stderr)
        log.note(done, logging.WARNING)
        status = 0
    elif stopped_by:  # the processes' shares say nothing of it: said once, here
        say_done_before_the_end(index, names, log)
        said = f"stopped ({stopped_by}); {resume_text(args.overwrite)}"
        print(f"ctcnet predict: {said}", file=sys.stderr)
        log.note(said, logging.WARNING)
    if missing and status == 0:
        say_error(f"no output for {missing}", log)
        status = 1
    def say(line: str) -> None:  # printed unless quiet, logged always
        log.note(line)
        if not args.quiet:
            print(line)

    # Each input's outcome, then those refused (before any process or by one; stopped: none).
    aside = {} if status in STOPPED else say_outcome(index, out, say)
    # (as one process says them: one another run holds, or finished since, is a note)
    aside = refusals_that_stand(index, aside, several=len(names) > 1)
    for name, reason in {**aside, **set_aside}.items():
        say_error(f"{name} was set aside: {reason}", log)
    return 2 if (set_aside or aside) and status == 0 else status
