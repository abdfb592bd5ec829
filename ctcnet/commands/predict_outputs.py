"""What a predict run's inputs are named as outputs: each input's name in run.json (its
output folder's, a sample id another input holds said with its folder), and
``--list-outputs``, which a workflow engine declares its outputs by before a job runs."""

from __future__ import annotations

from pathlib import Path

from ctcnet.core.paths import as_listed
from ctcnet.errors import InputError
from ctcnet.inference.distributed import shard as split


def output_names(cartridges, datasets) -> list[str]:
    """The output folder's name of each input, as run.json lists them (``output_names.run_names``:
    cartridges that share a sample id, set aside, each with its folder)."""
    from ctcnet.inference.output_names import output_name_and_frames, run_names

    return run_names([(output_name_and_frames(c)[0], c) for c in cartridges], datasets)


def list_outputs(out, cartridges, datasets, shard: tuple[int, int] | None,
                 panel=None, pixel_size=None) -> int:
    """``--list-outputs``: each input of this job (``--shard``: its share, by name as the run
    splits them) and its output folder, a line each (tab between), with a third column,
    ``set aside: why``, for an input the run would refuse (its metadata, a crop folder's crops
    as listed, its channels against the model's ``panel`` where given, an output name another
    input holds or a run writes at the top of --out; ``pixel_size``: ``--pixel-size``); exit 2
    where there is one, as the run would."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.inference.inputs import checked_cartridge, stated_pixel_size
    from ctcnet.inference.output_names import output_folder_of
    from ctcnet.io.cartridge_info import RESERVED_OUT_NAMES
    from ctcnet.io.scan import open_cartridge

    pairs = list(zip([*cartridges, *datasets], output_names(cartridges, datasets)))
    if shard is not None:
        pairs = split(pairs, *shard, key=lambda pair: output_folder_of(pair[1]))
    refused = 0
    for path, name in pairs:
        why = ""
        if name != output_folder_of(name):  # "S1 (/its/folder)": another input's id
            why = ("its sample id" if path in cartridges else "its name") + \
                " is another input's: their outputs would be one folder"
        elif name.lower() in RESERVED_OUT_NAMES:  # (a cartridge's id is refused as it opens)
            why = f"a run writes {name!r} at the top of --out: rename the crop folder"
        else:
            try:
                if path in cartridges:
                    checked = checked_cartridge(open_cartridge(path))  # (a pixel size no scan
                    if panel is not None:  # has; a 4-channel scan in a night of 5-channel)
                        checked.conform(panel)
                else:  # its crops' channels and the files named, as the run reads them first
                    index = read_crop_index(path, pixel_size=stated_pixel_size(pixel_size),
                                            look_ahead=True)
                    if panel is not None:
                        index.conform(panel)
            except InputError as err:
                why = str(err).removeprefix(f"{path}: ")
        refused += bool(why)
        print(f"{Path(path).absolute()}\t{as_listed(Path(out) / output_folder_of(name)).absolute()}"
              + (f"\tset aside: {why}" if why else ""))
    return 2 if refused else 0


def model_panel(args, cartridges, datasets):
    """The panel of the model a run would use (``--model``, or the shipped one the inputs'
    channels choose, said on stderr alone: ``--list-outputs`` prints lines a workflow engine
    parses), for the channel check an input is set aside by; None where none is chosen."""
    from ctcnet.inference.model_choice import choose_for_inputs
    from ctcnet.nn.registry import is_registry_name

    try:
        if args.model is None:
            return choose_for_inputs(cartridges, datasets, args.pixel_size, "the input data").panel
        if is_registry_name(args.model):
            from ctcnet.nn.registry import get_model

            return get_model(args.model).panel
    except InputError:
        return None
    from ctcnet.inference.backends import load_backend

    return load_backend(args.model, backend=args.backend, device="cpu").spec.panel
