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
