"""``ctcnet simulate crops|cartridge|gallery``: simulated training data, scans and a gallery.

An existing output is refused by name unless ``--overwrite`` is given. With it, a crop set or
cartridge folder is replaced whole (set aside while the new one is written, so no frame or crop
of the earlier run stays mixed in with the new ones, and put back should the run fail or be
stopped, which leaves nothing of its own), and only when it is an earlier ``ctcnet simulate``
output (its ``dataset.json`` or ``cartridge.json`` says so) holding nothing simulate did not
write: ``--overwrite`` never deletes a real scan, a lab's crops, or notes and crops added to
a simulated set. A gallery's ``gallery_<class>.png`` files are written as one: a run stopped
part-way leaves none of its own and puts back those it replaced.
"""

from __future__ import annotations

import argparse
import os

from ctcnet.commands import arg_types
from ctcnet.commands.simulate_output import output_replaced
from ctcnet.core.printable import named_counts
from ctcnet.errors import CtcnetError, InputError
from ctcnet.io.panel import load_panel
from ctcnet.io.plausibility import CELLSEARCH_FRAME_SHAPE
from ctcnet.io.taxonomy import load_taxonomy

HELP = "Simulate realistic scans: a crop dataset, a whole cartridge, or a gallery."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet simulate`` to its subparser."""
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    crops = sub.add_parser("crops", help="write a labelled crop dataset (class folders, "
                                         "manifest.csv, dataset.json)")
    _out(crops)
    crops.add_argument("--counts", default="500",
                       help="crops per class: one number, or class=n,class=n (default 500)")
    crops.add_argument("--crop-size", type=arg_types.whole_at_least(16, most=MAX_CROP_SIDE),
                       default=80, help="crop side in pixels (default 80)")
    crops.add_argument("--samples", type=arg_types.whole_at_least(1, most=MAX_SAMPLES),
                       default=8,
                       help="simulated samples (patients), each its own scanner and stain "
                            "(default 8)")
    crops.add_argument("--export", choices=("tiff", "rgb-jpeg", "tight"), default="tiff",
                       help="tiff: raw counts, one plane per channel (default); rgb-jpeg: 8-bit "
                            "RGB composite JPEGs as viewers and publications export them; "
                            "tight: single-cell RGB exports as published figures show a cell "
                            "(cut round it, each channel auto-contrasted, black background), "
                            "from cells rendered at --render-pixel-size")
    crops.add_argument("--planes", default=None,
                       help="rgb-jpeg, tight: the markers shown as R,G,B (default "
                            "CK,CD45,DAPI)")
    crops.add_argument("--jpeg-quality", default=None,
                       help="rgb-jpeg: JPEG quality range drawn per crop (default 60-95; "
                            "chroma subsampling 4:4:4, 4:2:2 or 4:2:0 is drawn too); tight "
                            "with --image-format jpg: the same range, 4:2:0")
    crops.add_argument("--export-pixel-size", type=arg_types.pixel_size_um, default=None,
                       metavar="UM",
                       help="rgb-jpeg, tight: pixel size of the exported images in um "
                            "(default: the panel's for rgb-jpeg, 0.1 for tight); crops are "
                            "resized to it, as a viewer's zoom does")
    crops.add_argument("--render-pixel-size", type=arg_types.pixel_size_um, default=None,
                       metavar="UM",
                       help="tight: pixel size the cells are rendered at before the export "
                            "(default 0.2: finer than a scan's, as a microscope images one cell; "
                            "the crop side follows, so the field of view is the panel's)")
    crops.add_argument("--image-format", choices=("png", "jpg"), default=None,
                       help="tight: PNG (lossless, default) or JPEG (quality from "
                            "--jpeg-quality)")
    crops.add_argument("--ck-copy", type=arg_types.decimal, default=None, metavar="SHARE",
                       help="tight: the share of exports (of every class) whose CD45 plane "
                            "shows a copy of CK at 15-30 %% of its level, as published dim-CK "
                            "CTCs do (CK's dye seen through the CD45 filter; default 0)")
    _common(crops)

    cart = sub.add_parser("cartridge", help="write a cartridge of frames plus ground_truth.csv")
    _out(cart)
    cart.add_argument("--frames", type=arg_types.whole_at_least(1), default=6,
                      help="number of frames (default 6; a whole CellSearch cartridge is "
                           "175 = 5 x 35)")
    frame = "x".join(map(str, CELLSEARCH_FRAME_SHAPE))
    cart.add_argument("--frame-shape", default=frame,
                      help=f"HxW in pixels (default {frame}, a CellSearch frame)")
    cart.add_argument("--events", type=arg_types.not_negative, default=300,
                      help="mean events per frame (default 300)")
    cart.add_argument("--layout", choices=("multipage", "channels", "png"), default="multipage",
                      help="multipage: one 16-bit TIFF a frame, as CellSearch writes them "
                           "(default); channels: one TIFF a channel; png: an 8-bit display "
                           "export, one PNG a channel")
    cart.add_argument("--rates", default=None,
                      help="event fractions per class, e.g. ctc=0.01,cluster=0.002 "
                           "(default: ctc 0.004, cluster 0.001, the rest leukocytes and debris "
                           "4:6; a few frames may hold no CTC)")
    cart.add_argument("--sample-id", default=None,
                      help="the sample's name in cartridge.json (default: sim<seed>)")
    _common(cart)

    gallery = sub.add_parser("gallery", help="write gallery_<class>.png montages to look at")
    _out(gallery)
    gallery.add_argument("--per-class", type=arg_types.whole_at_least(1, most=MAX_GALLERY),
                         default=8,
                         help="crops shown per class (default 8)")
    gallery.add_argument("--crop-size", type=arg_types.whole_at_least(16, most=MAX_CROP_SIDE),
                         default=80,
                         help="crop side in pixels (default 80)")
    _common(gallery, gallery=True)


def _out(p: argparse.ArgumentParser) -> None:
    """The output folder, as OUT or as ``--out`` (every other command's spelling)."""
    p.add_argument("out", nargs="?", help="output folder (or --out)")
    p.add_argument("--out", dest="out_option", metavar="OUT", help=argparse.SUPPRESS)


def output_folder(args) -> str:
    """The output folder given as OUT or ``--out`` (one of them, or the same twice)."""
    given = {v for v in (args.out, getattr(args, "out_option", None)) if v is not None}
    if len(given) != 1:
        raise InputError("name one output folder: OUT or --out OUT" if not given else
                         f"two output folders given ({' and '.join(sorted(given))}): name one")
    return given.pop()


def _common(p: argparse.ArgumentParser, gallery: bool = False) -> None:
    p.add_argument("--panel", default=None, help="panel JSON/YAML (default: 5-channel "
                                                  "CellSearch-like DAPI, CK, CD45, CD61, CD66b)")
    p.add_argument("--taxonomy", default=None, help="taxonomy JSON/YAML (default: 4 classes)")
    p.add_argument("--seed", type=arg_types.seed, default=0,
                   help="random seed (default 0): the same seed and options draw the same data")
    p.add_argument("--clean", action="store_true",
                   help="one nominal scanner instead of the default randomisation ranges")
    p.add_argument("--look", choices=("default", "filled-ctc"), default="default",
                   help="how cells look: the simulator's default (the look the shipped "
                        "models' cards are measured on), or filled-ctc, the look their first "
                        "training stages drew (CK-filled CTCs, CD45 floored at 5 noise units; "
                        "SimConfig.with_filled_ctc_look)")
    p.add_argument("--shift", action="append", default=[], metavar="NAME",
                   help="apply a named shift (repeatable): defocus, dim_ck, noise_2x, "
                        "pixel_size, small_cells, large_cells, elongated_ctcs, bleed_through, "
                        "display_8bit")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the gallery images (gallery_<class>.png) in OUT, the "
                   "folder's other files left as they are (default: refuse, naming them)"
                   if gallery else
                   "replace an earlier simulate output in OUT, whole (default: refuse, "
                   "naming it; refused too where it holds files simulate did not write)")


# What one run draws at most (held in memory whole: more was killed midway, the output
# --overwrite set aside gone with it), and a frame a camera takes.
MAX_SIMULATED_CROPS, MAX_SIMULATED_PIXELS = 200_000, 2_000_000_000  # (4 GB of 16-bit counts)
MAX_SAMPLES, MAX_CROP_SIDE, MIN_FRAME_SIDE, MAX_FRAME_SIDE = 10_000, 1024, 64, 16_384
MAX_GALLERY = 1_000  # crops a class on one montage
# What a run holds a pixel of a channel it draws, in bytes, measured: a 4,096 x 4,096 frame
# of 5 channels peaked at 3.0 GB (two frames are drawn at once), 160 crops of 512 px at 7.2.
FRAME_BYTES, CROP_BYTES = 36, 34


def _refuse_past_memory(needed: float, what: str) -> None:
    """Refuse, before any work, a run that needs more memory than the machine has: it was
    killed midway, or told to free memory and run again, which could not help."""
    from ctcnet.inference.resources import physical_memory_bytes

    total = physical_memory_bytes()
    if total is not None and needed > total:
        raise InputError(f"{what} needs about {needed / 2**30:,.0f} GiB of memory, more than "
                         f"this machine's {total / 2**30:,.0f} GiB: draw less at a time")

def _parse_pairs(text: str, what: str, cast):
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"{what}: expected name=value pairs separated by commas, got "
                             f"{text!r}")
        if name.strip() in out:  # (the last one silently won)
            raise InputError(f"{what}: {name.strip()} is given twice in {text!r}")
        try:
            out[name.strip()] = cast(value)
        except ValueError:
            raise InputError(f"{what}: {value!r} is not a number") from None
    return out


def _parse_range(text: str, what: str) -> tuple[int, int]:
    """'60-95' -> (60, 95); '80' -> (80, 80)."""
    try:
        parts = [int(v) for v in text.split("-")]
    except ValueError:
        raise InputError(f"{what}: expected a number or a range like 60-95, got {text!r}") \
            from None
    if len(parts) not in (1, 2):
        raise InputError(f"{what}: expected a number or a range like 60-95, got {text!r}")
    return parts[0], parts[-1]


def _tight_rendering(panel, args, cfg):
    """For ``--export tight``: the panel to render the cells with (its pixel size
    ``--render-pixel-size``, default :data:`~ctcnet.simulate.export.TIGHT_RENDER_PIXEL_UM`),
    the crop side to render (so the field of view stays ``--crop-size`` pixels of the
    panel's), ``cfg`` as a microscope renders a cell, and the export's pixel size
    (``--export-pixel-size``, default ``TIGHT_EXPORT_PIXEL_UM``)."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.simulate.export import (
        TIGHT_EXPORT_PIXEL_UM,
        TIGHT_RENDER_PIXEL_UM,
        tight_rendering,
    )

    render_um = TIGHT_RENDER_PIXEL_UM if args.render_pixel_size is None \
        else args.render_pixel_size
    export_um = TIGHT_EXPORT_PIXEL_UM if args.export_pixel_size is None \
        else args.export_pixel_size
    if not export_um > 0:  # the render pixel size: tight_rendering's check
        raise InputError(f"--export-pixel-size must be positive, got {export_um}")
    return (*tight_rendering(panel, args.crop_size, render_um, cfg), export_um)


def _config(args):
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.simulate import SimConfig

    cfg = SimConfig.clean() if args.clean else SimConfig()
    if getattr(args, "look", "default") == "filled-ctc":
        cfg = cfg.with_filled_ctc_look()
    return cfg.with_shift(*args.shift) if args.shift else cfg


# The crop options of one --export or another (the option, its attribute, the exports that
# read it, its default): given to another, each did nothing, unsaid.
_EXPORT_OPTIONS = (("--planes", "planes", ("rgb-jpeg", "tight"), "CK,CD45,DAPI"),
                   ("--jpeg-quality", "jpeg_quality", ("rgb-jpeg", "tight"), "60-95"),
                   ("--export-pixel-size", "export_pixel_size", ("rgb-jpeg", "tight"), None),
                   ("--render-pixel-size", "render_pixel_size", ("tight",), None),
                   ("--image-format", "image_format", ("tight",), "png"),
                   ("--ck-copy", "ck_copy", ("tight",), 0.0))


def _export_options(args) -> None:
    """Refuse a crop option of another ``--export`` than the one asked for (a 0.2 um export
    asked of 16-bit TIFF crops wrote them at the panel's 0.64 without a word); then each
    option not given takes its default."""
    if args.ck_copy == 0:  # (no copy drawn: nothing asked of any export)
        args.ck_copy = None
    if args.export == "tight" and args.jpeg_quality is not None and args.image_format != "jpg":
        raise InputError("--jpeg-quality sets tight exports' JPEG quality: add --image-format "
                         "jpg, or leave it out (PNG is lossless)")
    for flag, attr, exports, default in _EXPORT_OPTIONS:
        if getattr(args, attr) is not None and args.export not in exports:
            raise InputError(f"{flag} is an option of --export {' or '.join(exports)}, not of "
                             f"--export {args.export}: add --export {exports[-1]}, or leave "
                             "it out")
        if getattr(args, attr) is None:
            setattr(args, attr, default)
    planes = [p.strip() for p in args.planes.split(",")] if args.planes else []
    if args.export in ("rgb-jpeg", "tight") and len(planes) != 3:  # (a panel's error before)
        raise InputError(f"--planes names the 3 planes of an RGB export, red first, got "
                         f"{len(planes)}: {args.planes!r}")


def _write_crops(args, batch, panel, rendered, export_um, quality) -> None:
    """A simulated crop batch written as ``--export`` asks: 16-bit crops (tiff), tight
    exports or RGB JPEG composites."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.simulate import write_crop_batch

    if args.export == "tight":
        from ctcnet.simulate.export import write_tight_export_dataset

        write_tight_export_dataset(batch, args.out, rendered,
                                   [p.strip() for p in args.planes.split(",")], export_um,
                                   args.image_format, quality, seed=args.seed,
                                   ck_copy=args.ck_copy)
    elif args.export == "rgb-jpeg":
        from ctcnet.simulate.export import write_rgb_jpeg_dataset

        write_rgb_jpeg_dataset(batch, args.out, panel,
                               [p.strip() for p in args.planes.split(",")], quality,
                               args.export_pixel_size, seed=args.seed)
    else:
        write_crop_batch(batch, args.out, panel)


def run(args) -> int:
    """Run ``ctcnet simulate``: write a simulated crop dataset, cartridge or gallery; returns the
    exit status."""
    import time

    from ctcnet.core.install_hint import install_command
    from ctcnet.inference.backends import has_torch

    if not has_torch():  # before any folder is made: the refusal leaves nothing behind
        raise CtcnetError("the simulator draws its camera noise with torch, which this install "
                          f"lacks: {install_command('all')}")
    args.out = output_folder(args)
    panel = load_panel(args.panel)
    if "nucleus" not in {c.role for c in panel.channels}:
        # Every cell it draws has a nucleus (a CTC is DAPI+): unseen, its truth listed bare
        # nuclei nobody could see, and predict refused the scan.
        raise InputError("the panel has no nucleus channel (DAPI, Hoechst): the simulator "
                         "draws every cell with its nucleus, and a scan without one is none "
                         "predict reads; add the channel", args.panel)
    unknown = [c.name for c in panel.channels if c.role == "unknown"]
    if unknown:
        import logging

        logging.getLogger(__name__).warning(
            "the simulator knows no marker %s: drawn as background and the other dyes' bleed "
            "into it (DAPI's shows the nuclei there), no cell carries it "
            "(it draws DAPI, CK, CD45, CD61/CD41, CD66b/CD15, VIM and EpCAM); a model trained "
            "on these %s learns nothing of it", ", ".join(unknown),
            "crops" if args.what == "crops" else "scans")
    taxonomy = load_taxonomy(args.taxonomy)
    cfg = _config(args)
    start = time.perf_counter()
    if args.what == "crops":
        # the library: imported when the command runs (see ctcnet.commands)
        from ctcnet.simulate import simulate_crops
        from ctcnet.simulate.export import check_ck_copy

        # (a number alone, signed too: -3 is refused as a count, not as "name=value pairs")
        counts = (int(args.counts) if args.counts.strip().lstrip("+-").isdigit()
                  else _parse_pairs(args.counts, "--counts", int))
        if isinstance(counts, int) and counts < 0:
            raise InputError(f"--counts: {counts} crops a class; give 0 or more (or "
                             "name=count pairs)")
        total = counts * len(taxonomy.names) if isinstance(counts, int) else \
            sum(counts.values())
        pixels = total * args.crop_size ** 2 * panel.num_channels  # (held whole: refused)
        if total > MAX_SIMULATED_CROPS or pixels > MAX_SIMULATED_PIXELS:
            raise InputError(f"--counts: {total:,} crops of {args.crop_size} px in all, more "
                             f"than one run draws ({MAX_SIMULATED_CROPS:,} crops, "
                             f"{MAX_SIMULATED_PIXELS:,} pixels): draw them in several runs "
                             "(another --seed each)")
        _refuse_past_memory(pixels * CROP_BYTES, f"--counts: {total:,} crops of "
                            f"{args.crop_size} px")
        _export_options(args)
        quality = _parse_range(args.jpeg_quality, "--jpeg-quality")
        rendered, crop_size, export_um = panel, args.crop_size, args.export_pixel_size
        if args.export == "tight":
            rendered, crop_size, cfg, export_um = _tight_rendering(panel, args, cfg)
        check_ck_copy(args.ck_copy)  # before anything is written, as the other options
        with output_replaced(args, taxonomy):
            batch = simulate_crops(counts, rendered, taxonomy, crop_size, args.seed, cfg,
                                   args.samples)
            made = time.perf_counter() - start
            _write_crops(args, batch, panel, rendered, export_um, quality)
        print(f"simulated {len(batch)} crops in {made:.1f} s; wrote {args.out}")
        drawn = batch.pixel_size_um  # (a tight export draws at its own pixel size)
        if args.export != "tight" and len(drawn) and (drawn.min() != drawn.max() or
                                                      drawn[0] != panel.pixel_size_um):
            # The scale varies by sample on purpose (scanners and cells differ): a test set
            # read at panel.json's one size reads each sample a little off it.
            key, stated = ("pixel_size_um", panel.pixel_size_um) if args.export == "tiff" \
                else ("drawn_pixel_size_um", args.export_pixel_size or panel.pixel_size_um)
            # (resized as if at the panel's: at the size stated, each lies at this share)
            drawn = drawn * stated / panel.pixel_size_um
            whose = "panel's" if args.export == "tiff" else "export's"
            print(f"drawn at {drawn.min():.2f}-{drawn.max():.2f} um/px a sample (the {whose} "
                  f"{stated:g} x the simulator's pixel_scale; each crop's in "
                  f"dataset.json {key}; --clean draws at the {whose}), written as "
                  f"{stated:g} um/px")
    elif args.what == "cartridge":
        from ctcnet.simulate import simulate_cartridge

        try:
            h, w = (int(v) for v in args.frame_shape.lower().split("x"))
        except ValueError:
            raise InputError(f"--frame-shape must look like 1036x1384, got "
                             f"{args.frame_shape!r}") from None
        if not (MIN_FRAME_SIDE <= min(h, w) and max(h, w) <= MAX_FRAME_SIDE):
            raise InputError(f"--frame-shape: sides of {MIN_FRAME_SIDE} to {MAX_FRAME_SIDE:,} "
                             f"pixels, not {h}x{w}")
        _refuse_past_memory(h * w * panel.num_channels * FRAME_BYTES * min(2, args.frames),
                            f"--frame-shape {h}x{w}")
        rates = _parse_pairs(args.rates, "--rates", float) if args.rates else None
        with output_replaced(args, taxonomy):
            truth = simulate_cartridge(args.out, panel, taxonomy, args.frames, (h, w),
                                       args.seed, cfg, args.events, args.layout, rates,
                                       args.sample_id)
        counts = named_counts(truth["class"].value_counts().to_dict())
        print(f"wrote {args.frames} frames and {len(truth):,} events ({counts}) to {args.out} in "
              f"{time.perf_counter() - start:.1f} s")
        # The scan's pixel size is the panel's times a scanner's draw unless --clean: a site
        # simulated "at 0.64" was written at 0.78, unsaid.
        drawn = load_panel(os.path.join(args.out, "panel.json")).pixel_size_um
        if abs(drawn - panel.pixel_size_um) > 1e-6:
            print(f"at {drawn:g} um/px (the panel's {panel.pixel_size_um:g} x the simulator's "
                  "pixel_scale, a scanner's; --clean draws at the panel's)")
    else:
        from ctcnet.simulate.gallery import write_simulated_gallery

        _refuse_past_memory(args.per_class * len(taxonomy.names) * args.crop_size ** 2
                            * panel.num_channels * CROP_BYTES, "--per-class and --crop-size")
        with output_replaced(args, taxonomy):
            paths = write_simulated_gallery(args.out, panel, taxonomy, args.per_class,
                                            args.crop_size, args.seed, cfg)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0
