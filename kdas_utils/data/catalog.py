"""The datasets of the KDAS paper and their split (PraNet's, used by Polyp-PVT and KDAS)."""

PAPER_DATASETS = [
    {
        "dataset": "Kvasir-SEG",
        "frames": 1000,
        "train": 900,
        "test": 100,
        "resolution": "332x487 to 1920x1072",
        "origin": "Vestre Viken (Norway), Jha et al. 2020",
    },
    {
        "dataset": "CVC-ClinicDB",
        "frames": 612,
        "train": 550,
        "test": 62,
        "resolution": "384x288",
        "origin": "Hospital Clinic Barcelona, Bernal et al. 2015",
    },
    {
        "dataset": "CVC-ColonDB",
        "frames": 380,
        "train": 0,
        "test": 380,
        "resolution": "574x500",
        "origin": "Bernal et al. 2012",
    },
    {
        "dataset": "CVC-300 (EndoScene)",
        "frames": 60,
        "train": 0,
        "test": 60,
        "resolution": "574x500",
        "origin": "Vazquez et al. 2017",
    },
    {
        "dataset": "ETIS-LaribPolypDB",
        "frames": 196,
        "train": 0,
        "test": 196,
        "resolution": "1225x966",
        "origin": "Silva et al. 2014",
    },
]
"""One row per dataset: frames in the release, PraNet's train/test split, sizes, origin.
Training uses Kvasir-SEG + CVC-ClinicDB (1450 frames); the other three are unseen domains."""

# Which test sets come from the training data's sources ("seen") and which from hospitals and
# cameras the networks never saw ("unseen"): PraNet's five names (the KDAS paper's Table 1) and the
# synthetic generator's two (``Synthetic-Shift`` is its other colour and texture regime).
SEEN_TEST_SETS = ("Kvasir", "CVC-ClinicDB", "Synthetic")
UNSEEN_TEST_SETS = ("CVC-300", "CVC-ColonDB", "ETIS-LaribPolypDB", "Synthetic-Shift")
DOMAINS = ("seen", "unseen")


def domain(name: str, extra_root: bool = False) -> str:
    """``"seen"`` or ``"unseen"`` for the test set called ``name``.

    The named sets above are labelled by name. Any other set is the series' choice: ``"unseen"``
    when it comes from a test root beside the training data (``extra_root``: ``KDAS_TEST_ROOTS``,
    ``--test-root``), ``"seen"`` when it lies in the training root's own ``TestDataset/``, which is
    taken to hold frames of the training sources."""
    if name in SEEN_TEST_SETS:
        return "seen"
    if name in UNSEEN_TEST_SETS:
        return "unseen"
    return "unseen" if extra_root else "seen"


# PraNet's split as published: the training frames (Kvasir-SEG 900 + CVC-ClinicDB 550) and each test set.
PRANET_COUNTS = {"TrainDataset": 1450} | {row["dataset"].split(" ")[0]: row["test"] for row in PAPER_DATASETS}
PRANET_COUNTS["Kvasir"] = PRANET_COUNTS.pop("Kvasir-SEG")


def against_pranet(train_frames: int, test_frames: dict[str, int]) -> list[str]:
    """How the counts of a copy compare with PraNet's published split (:data:`PRANET_COUNTS`), one
    line each: ``train_frames`` (training plus validation) and ``{test set: frames}``. A line for each
    count that differs, one saying that all agree, or, when no test set is one of PraNet's (the
    synthetic frames), one saying there is nothing to compare with."""
    if not any(name in PRANET_COUNTS for name in test_frames):
        return ["no set of PraNet's split here (synthetic frames): no published count to compare with"]
    found = {"TrainDataset": train_frames} | test_frames
    lines = []
    for name, n in found.items():
        published = PRANET_COUNTS.get(name)
        if published is not None and n != published:
            share = "fewer" if n < published else "more"
            lines.append(
                f"{name}: {n} frames here, {published} in PraNet's split ({abs(published - n)} {share} in this copy)"
            )
    return lines or ["every count agrees with PraNet's split"]
