"""`stcbench data generate|download|check|info`: make, fetch, verify and describe datasets."""
from __future__ import annotations

import contextlib
import sys

from stcbench.errors import ConfigError, DataError
from stcbench.strict_json import dumps

SUBCOMMANDS = ("generate", "download", "check", "info")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="generate, download, check or describe (info) datasets",
        description="Generate the small embedded datasets, check dataset files, or list datasets. "
                    "The data root defaults to $STCBENCH_DATA_ROOT, else ./datasets.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")

    generate = actions.add_parser("generate", help="write the embedded default in the published formats")
    generate.add_argument("--dataset", required=True, help="mmnist, taxibj, kth (kth40 uses kth) or all")
    generate.add_argument("--data-root", default=None, help="root folder (default: $STCBENCH_DATA_ROOT or datasets/)")
    generate.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    generate.add_argument("--size", choices=("small", "medium"), default="small", help="size preset")
    generate.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                          help="override one generator parameter (see `stcbench data info`), repeatable")
    generate.add_argument("--force", action="store_true", help="replace an existing dataset folder")

    download = actions.add_parser(
        "download", help="download the published dataset files (resumable; checked before they are installed)",
        description="Fetches the published files (Moving MNIST: MNIST training images and the fixed test set; "
                    "TaxiBJ and KTH: the OpenSTL v0.1.0 release archives), resumes an interrupted transfer on the "
                    "next call, checks them and installs the dataset folder in one rename. Moving MNIST's files are "
                    "checked against their published MD5s and sizes; no checksum is published for the TaxiBJ and "
                    "KTH archives, so their contents are checked (`data check`'s file check; a TaxiBJ file of other "
                    "sample counts than the published is warned about) and the sha256 of every file is printed for "
                    "you to compare. A download that does not pass is not kept (exit 2).")
    download.add_argument("--dataset", required=True, help="mmnist, taxibj, kth (kth40 uses kth) or all")
    download.add_argument("--data-root", default=None, help="root folder (default: $STCBENCH_DATA_ROOT or datasets/)")
    download.add_argument("--mirror", default=None, metavar="URL",
                          help="fetch every file as URL/<file name> instead of the published addresses")
    download.add_argument("--force", action="store_true", help="replace an existing dataset folder")

    check = actions.add_parser("check", help="validate dataset files; print sizes, shapes and ranges")
    check.add_argument("--dataset", required=True, help="mmnist, taxibj, kth, kth40 or all")
    check.add_argument("--data-root", default=None, help="root folder (default: $STCBENCH_DATA_ROOT or datasets/)")
    check.add_argument("--selection", choices=("val", "openstl_test"), default="val")
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    info = actions.add_parser("info", help="list datasets: shapes, frames, files and published sizes")
    info.add_argument("--dataset", default="all")
    info.add_argument("--data-root", default=None)

    parser.set_defaults(func=run, data_parser=parser)


def run(args) -> int:
    if args.data_command not in SUBCOMMANDS:
        args.data_parser.print_help()
        return 2
    return {"generate": run_generate, "download": run_download, "check": run_check,
            "info": run_info}[args.data_command](args)


def dataset_names(name: str, for_generation: bool) -> list[str]:
    from stcbench.data import DATASET_NAMES, GENERATED_NAMES, get_dataset_spec

    if name.lower() == "all":
        return list(GENERATED_NAMES if for_generation else DATASET_NAMES)
    try:
        spec = get_dataset_spec(name)
    except ConfigError as error:
        raise ConfigError(f"{error} (or all)") from None
    return ["kth" if for_generation and spec.folder == "kth" else spec.name]


def parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = value.strip()
    return params


def run_generate(args) -> int:
    from stcbench.data import generate_dataset

    refuse_data_root_inside_run(args.data_root)
    params = parse_params(args.param)
    names = dataset_names(args.dataset, for_generation=True)
    if params and len(names) > 1:
        raise ConfigError("--param applies to one dataset; use it with a single --dataset")

    def generate(name: str) -> None:
        present = existing_dataset_folder(name, args.data_root)
        if len(names) > 1 and present is not None and not args.force:    # --dataset all goes on to the others
            print(f"{present}: already there, kept (--force replaces it)")
            return
        generate_dataset(name, args.data_root, seed=args.seed, size=args.size, overrides=params, force=args.force,
                         log=print)

    for_each_dataset(names, "generate", generate, (DataError, ConfigError))
    return 0


def for_each_dataset(names: list[str], command: str, action, errors=(DataError,)) -> None:
    """`action(name)` for each dataset; of several, one that fails is said and the others still come, and one
    DataError at the end names the failures."""
    failed = []
    for name in names:
        try:
            action(name)
        except errors as error:
            if len(names) == 1:
                raise
            print(f"stcbench data {command}: error: {name}: {error}", file=sys.stderr)
            failed.append(name)
    if failed:
        others = "; the others are there" if len(failed) < len(names) else ""
        raise DataError(f"{len(failed)} of {len(names)} datasets failed ({', '.join(failed)}, said above){others}. "
                        f"Run the same command again for them")


def existing_dataset_folder(name: str, data_root):
    """The folder `generate` would write for `name`, if it is a folder with files in it; else None (nothing, an
    empty folder or a dangling link: `generate` makes it, or says why not)."""
    from stcbench.data import get_dataset_spec
    from stcbench.data.specs import resolve_data_root

    folder = resolve_data_root(data_root) / get_dataset_spec(name).folder
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def run_download(args) -> int:
    from stcbench.data.download import download_dataset

    refuse_data_root_inside_run(args.data_root)
    names = dataset_names(args.dataset, for_generation=True)
    with sigterm_stops_the_download():
        for_each_dataset(names, "download",
                         lambda name: download_dataset(name, args.data_root, mirror=args.mirror, force=args.force))
    return 0


@contextlib.contextmanager
def sigterm_stops_the_download():
    """SIGTERM ends a download as Ctrl-C does, through the code's own clean-up: the transfer's temporary file is
    removed and its `.part` file kept for the next call to resume; exit status 143 (128 + SIGTERM)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        print("stopped by SIGTERM: run the same command again to resume the transfer", file=sys.stderr)
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def refuse_data_root_inside_run(data_root) -> None:
    """The data folder, as given or from $STCBENCH_DATA_ROOT, never lies inside a run's folder."""
    from stcbench.data.specs import DATA_ROOT_ENV, resolve_data_root
    from stcbench.engine.run_folder import refuse_folder_inside_run

    refuse_folder_inside_run(resolve_data_root(data_root), "--data-root" if data_root else f"${DATA_ROOT_ENV}")


def run_check(args) -> int:
    from stcbench.data import check_dataset

    reports = [check_dataset(name, args.data_root, selection=args.selection,
                             log=lambda m: print(m, file=sys.stderr))
               for name in dataset_names(args.dataset, for_generation=False)]
    if args.json:
        print(dumps(reports if len(reports) > 1 else reports[0]))
        return 0
    for report in reports:
        print(f"{report['dataset']}: OK ({report['source']} data in {report['data_root']}, "
              f"selection {report['selection']})")
        for split, info in report["splits"].items():
            shape = "x".join(str(d) for d in info["shape"])
            print(f"  {split:5s} {info['samples']:7d} samples  [{shape}] {info['dtype']}  "
                  f"range [{info['min']:.3f}, {info['max']:.3f}]  {report['rules'].get(split, '')}")
        print(f"  checksum {report['checksum']} (runs on this data record it in metrics.json)")
    return 0


def run_info(args) -> int:
    from stcbench.data import data_source, get_dataset_spec
    from stcbench.data.generators import generator_params

    for name in dataset_names(args.dataset, for_generation=False):
        spec = get_dataset_spec(name)
        folder = spec.folder_path(args.data_root)
        present = all(p.exists() for p in spec.file_paths(args.data_root))
        state = data_source(name, args.data_root)["source"] if present else "missing"
        frames = f"{spec.in_frames}->{spec.out_frames}"
        if spec.train_frames != spec.total_frames:
            frames += f" (trained {spec.in_frames}->{spec.train_frames - spec.in_frames})"
        print(f"{spec.name}: {spec.title}, frames {frames}, (C,H,W)={spec.frame_shape}, "
              f"patch {spec.patch_size}")
        print(f"  files: {folder}/{{{', '.join(spec.files)}}} [{state}]")
        published = ", ".join(f"{k} {v}" for k, v in spec.published.items())
        print(f"  published: {published}")
        defaults = generator_params(name).__dict__
        print(f"  generator parameters (--param): "
              f"{', '.join(f'{k}={v}' for k, v in defaults.items())}")
    return 0
