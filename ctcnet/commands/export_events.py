"""``ctcnet export-events``: a predict run's events for flow-cytometry tools and QuPath.

``--fcs`` writes one FCS 3.1 file per sample (gate and plot the events' intensities, area and
class probabilities in FlowJo, FCS Express or FlowCal); ``--geojson`` one GeoJSON file per frame
whose events QuPath imports as classified detections on that frame's image. The formats are
described in :mod:`ctcnet.exports.event_exports`.
"""

from __future__ import annotations

import argparse

HELP = "Export a run's events as FCS 3.1 (flow-cytometry tools) and GeoJSON (QuPath)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet export-events`` to its subparser."""
    parser.add_argument("results", metavar="RESULTS",
                        help="a ctcnet predict --out folder (or one sample's folder in it)")
    parser.add_argument("--fcs", action="store_true",
                        help="one FCS 3.1 file per sample: <sample>/<sample>.fcs (the sample "
                             "id's characters other than letters, digits and . + = - as _: "
                             "Probe #3 -> Probe__3.fcs)")
    parser.add_argument("--geojson", action="store_true",
                        help="one GeoJSON file of QuPath detections per frame: "
                             "<sample>/geojson/<frame>.geojson")
    parser.add_argument("--geometry", choices=("box", "point"), default="box",
                        help="GeoJSON: each event's bounding box (default) or its centre")
    parser.add_argument("--out", default=None,
                        help="write every sample's exports here, side by side: "
                             "OUT/<sample>.fcs, OUT/<sample>_geojson/<frame>.geojson")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace exports written earlier")
    parser.add_argument("--codes", default=None, metavar="CSV",
                        help="a coded copy for a trial's sponsor (with --out): each sample "
                             "exported under its code from a CSV of sample_id,code rows, "
                             "the reviewer's name and the model's path left out "
                             "(docs/outputs.md, Identifiers in the outputs)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet export-events``: write predict results as FCS and/or QuPath GeoJSON files;
    returns the exit status."""
    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.exports.coded import read_codes
    from ctcnet.exports.event_exports import export_events

    codes = read_codes(args.codes) if args.codes is not None else None
    done = export_events(args.results, fcs=args.fcs, geojson=args.geojson, out=args.out,
                         overwrite=args.overwrite, geometry=args.geometry, codes=codes)
    for sample in done:
        parts = [f"{sample.fcs}"] if sample.fcs else []
        if sample.geojson:
            parts.append(f"{sample.frames} GeoJSON file(s) in {sample.geojson}")
        print(f"{sample.name}: {sample.events} events -> {'; '.join(parts)}")
    return 0
