"""Whether a labelled crop folder's CK and CD45 planes are the markers its ``panel.json``
names: its crops labelled ``ctc`` light CK and those labelled ``wbc`` light CD45, and not
another plane of the panel instead (EpCAM, CD61 swapped with one of them).

A folder gathered from two scanners may hold some files in another channel order; CK and CD45
swapped read as a right folder would (a nucleus in the DNA plane, every plane lit), and a
model trained or scored on them learns or is scored on the wrong markers without a word (a
quarter of a folder's crops swapped: a fine-tune's held-out macro-F1 0.86, two CTCs missed;
all of them: an evaluation's 0.55). The labels tell: a crop labelled ``ctc`` whose CD45 is
bright and its CK not, and one labelled ``wbc`` the other way. On simulated crops of the
default panel (150 a class, four looks: clean, dim CK, twice the noise, defocus) 0.7-2.7 %
of each read so; with CK and CD45 swapped in every crop, 71-82 % of the ``ctc`` crops and
45-68 % of the ``wbc`` ones. Both shares past :data:`ODD_SHARE` are said, with the samples
most of them come from; so is a sample whose crops of one label read so on half of five or more
(one scanner's sample among others', whose leukocytes may light CK too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from ctcnet.core.robust import crop_statistics
from ctcnet.io.panel import CK_NEGATIVE_CTC_ROLES

# A marker brighter than the other by this factor, and at least MIN_SNR noise units over its
# background, lights the crop "instead" of the other.
RATIO, MIN_SNR = 2.0, 5.0
# The share of each label's crops read the other way past which a swap is said (a tenth: five
# times the share a right folder shows), and the fewest such crops of each label.
ODD_SHARE, MIN_ODD = 0.10, 3
# A sample swapped alone (one scanner's of five) can stay under the folder's share where its
# leukocytes light CK too: a sample whose crops of one label read the other way on half of at
# least SAMPLE_MIN of them is said by itself (a right sample's 2 % makes that a chance of
# under one in 10^5).
SAMPLE_SHARE, SAMPLE_MIN = 0.5, 5
SAMPLES_NAMED = 3
# An 8-bit display export (an RGB composite, one display range per sample) makes a leukocyte's
# CD45 faint beside its non-specific CK: per-sample scan thumbnails in their right order read
# "CK and not CD45" on 25 of 50 wbc crops (and 5 of 50 ctc crops the other way), swapped on 7
# of 35 (36 of 41 ctc). There the ctc crops alone are judged, past a half; and a sample by
# itself on more of them, past 70 % (a sample's own display range read its 5 CTCs all so).
COMPOSITE_ODD_SHARE = 0.5
COMPOSITE_SAMPLE_SHARE, COMPOSITE_SAMPLE_MIN = 0.7, 10
# Crops read, spread over the folder's ctc and wbc crops (0.4 ms each): a folder of any size
# is judged in a quarter of a second, and a swapped scanner's share is read as a share.
SAMPLE_CROPS = 600
# Another plane of the panel (EpCAM, a platelet or neutrophil marker) swapped with CK: crops
# labelled ctc light it and not CK (RATIO times brighter) past this share. A right folder's
# simulated crops: 19 % of ctc crops light EpCAM so (a CTC's own); with CK and EpCAM, 40 %.
OTHER_PLANE_SHARE = 0.3
# Swapped with CD45: crops labelled wbc light it while their CD45 is not lit at all (under
# MIN_SNR), past this share. A neutrophil's CD66b outshines its CD45 by far, so "brighter
# than CD45" read 38 % of a right cartridge's wbc crops as swapped; but every leukocyte
# lights CD45. Right folders (simulated crops and cartridges, 5 seeds): 0-0.3 % of wbc
# crops; CD45 swapped with CD66b, 12-52 % (the leukocytes without CD66b); with CD61 or
# EpCAM, nearly all. But a look whose leukocytes' CD45 has a dim tail (the simulator's
# filled-ctc look, which the default model was trained on) lights CD66b without CD45 on
# 4-17 % of a right folder's wbc crops (8 folders of 100-150); there CD45 without CD66b is
# lit on far more (31-61 %), where a swap turns that round (CD66b: 31-63 % against 0-17 %;
# CD61: 47-85 % against 0-5 %). So a plane is said only where its crops outnumber CD45's
# own, and of the planes said so, the one that does by most (CD45 is swapped with one).
WBC_OTHER_PLANE_SHARE = 0.08
# A plane that vouches for a CTC that lost CK (vimentin, EpCAM: CK_NEGATIVE_CTC_ROLES) lights
# about a fifth of a right folder's ctc crops and not CK (the simulator's, 200 crops: VIM 20 %,
# EpCAM 19 %): a folder of 10 CTCs passed OTHER_PLANE_SHARE by chance one time in three. Such
# a plane is said only where its share is past that fifth beyond chance (binomial, under
# VOUCHING_CHANCE).
VOUCHING_SHARE, VOUCHING_CHANCE = 0.2, 1e-3


class MarkerLabelVotes:
    """Crops labelled ``ctc`` or ``wbc`` (up to :data:`SAMPLE_CROPS` of them, spread over the
    folder) read for which of CK and CD45 lights them, one at a time as a folder is read
    (``ck``, ``cd45``: the planes of those markers in the files)."""

    def __init__(self, ck: int, cd45: int, labels, sample_ids, composite: bool = False,
                 others: list[tuple[int, str]] = (), vouching: Iterable[str] = ()):
        self.ck, self.cd45 = ck, cd45
        self.vouching = set(vouching)  # the others' names that a CTC without CK may light
        # The other planes (index, name) a crop is read for lighting instead of its own
        # marker, and (label, plane name) -> the crops that do
        self.others = list(others)
        self.other_odd: Counter = Counter()
        # (wbc, plane name) -> the crops labelled wbc that light CD45 and not that plane
        self.own_alone: Counter = Counter()
        # (the labels judged, and past which share: see COMPOSITE_ODD_SHARE)
        self.judged = ("ctc",) if composite else ("ctc", "wbc")
        self.share, self.sample_share, self.sample_min = (
            (COMPOSITE_ODD_SHARE, COMPOSITE_SAMPLE_SHARE, COMPOSITE_SAMPLE_MIN) if composite
            else (ODD_SHARE, SAMPLE_SHARE, SAMPLE_MIN))
        self.labels, self.sample_ids = list(labels), list(sample_ids)
        voters = [i for i, label in enumerate(self.labels) if label in ("ctc", "wbc")]
        self.picks = set(voters) if len(voters) <= SAMPLE_CROPS else {
            voters[k] for k in np.linspace(0, len(voters) - 1, SAMPLE_CROPS).astype(int)}
        # (sample, label, "read" or "odd": lit by the other marker) -> crops; the folder's
        # and each sample's counts are sums of these.
        self.by_sample: Counter = Counter()

    @classmethod
    def of(cls, panel, labels, sample_ids) -> MarkerLabelVotes | None:
        """The votes for a folder of these labels, or None where the panel lacks CK or CD45
        or no crop is labelled ``ctc`` or ``wbc``."""
        ck, cd45 = panel.index_of_role("epithelial"), panel.index_of_role("leukocyte")
        if ck is None or cd45 is None or not {"ctc", "wbc"} & set(labels):
            return None
        rest = [(i, c.name) for i, c in enumerate(panel.channels)
                if i not in (ck, cd45) and c.role != "nucleus"]
        return cls(ck, cd45, labels, sample_ids, composite=bool(panel.composite),
                   others=rest, vouching=[c.name for c in panel.channels
                                          if c.role in CK_NEGATIVE_CTC_ROLES])

    def add(self, i: int, crop: np.ndarray) -> None:
        """Read crop ``i`` (C, H, W, in the files' planes)."""
        if i not in self.picks:
            return
        label = self.labels[i]
        planes = [self.ck, self.cd45, *(k for k, _ in self.others)]
        background, noise, top = crop_statistics(crop[planes][None])
        # Integer counts are not read finer than one level: on a flat background (8-bit
        # counts, noise 0) a marker one level over it read as lit, and a right folder as
        # swapped.
        floor = 1.0 if np.issubdtype(crop.dtype, np.integer) else 1e-3
        snr = ((top - background) / np.maximum(noise, floor))[0]
        ck, cd45 = snr[:2]
        bright, other = (cd45, ck) if label == "ctc" else (ck, cd45)
        self.by_sample[self.sample_ids[i], label, "read"] += 1
        if bright > MIN_SNR and bright > RATIO * max(other, 0.0):
            self.by_sample[self.sample_ids[i], label, "odd"] += 1
        own = ck if label == "ctc" else cd45
        for (_, name), lit in zip(self.others, snr[2:]):
            if lit > MIN_SNR and (own < MIN_SNR if label == "wbc" else
                                  lit > RATIO * max(own, 0.0)):
                self.other_odd[label, name] += 1
            elif label == "wbc" and own > MIN_SNR and lit < MIN_SNR:
                self.own_alone[label, name] += 1

    def _sums(self) -> tuple[Counter, Counter]:
        """The crops read and read the other way per (label, kind), and per (sample, kind)."""
        per_label: Counter = Counter()
        per_sample: Counter = Counter()
        for (sample, label, kind), n in self.by_sample.items():
            per_label[label, kind] += n
            per_sample[sample, kind] += n
        return per_label, per_sample

    def swapped_samples(self) -> list[str]:
        """The samples whose crops of one label read the other way on :data:`SAMPLE_SHARE` of
        :data:`SAMPLE_MIN` or more, most of their crops first."""
        found = {sample for (sample, label, kind), n in self.by_sample.items() if kind == "read"
                 and label in self.judged and n >= self.sample_min
                 and self.by_sample[sample, label, "odd"] >= self.sample_share * n}
        per_sample = self._sums()[1]
        return sorted(found, key=lambda sample: -per_sample[sample, "odd"])

    def warning(self) -> str | None:
        """The swaps in words: another plane with CK or CD45 (:meth:`other_plane_warnings`),
        first (CD45 swapped with EpCAM lights the CTCs' "CD45" too), then CK and CD45
        (:meth:`ck_cd45_warning`); None where neither reads so."""
        said = [w for w in (*self.other_plane_warnings(), self.ck_cd45_warning()) if w]
        return "; ".join(said) or None

    def other_plane_warnings(self) -> list[str]:
        """The other plane that crops labelled wbc light without CD45 (on
        :data:`WBC_OTHER_PLANE_SHARE` of them or more, and more of them than light CD45
        without it), and each that crops labelled ctc light instead of CK (on
        :data:`OTHER_PLANE_SHARE`), on :data:`MIN_ODD` crops at least."""
        from scipy.stats import binom  # (a folder's read, not the module's import)

        per_label = self._sums()[0]
        own = {"wbc": "CD45", "ctc": "CK"}
        said = []
        # The wbc plane said, if any: the one whose crops outnumber CD45's own by most.
        margins = {name: n - self.own_alone[label, name]
                   for (label, name), n in self.other_odd.items() if label == "wbc"}
        wbc_plane = max(margins, key=margins.get, default=None)
        for (label, name), n in sorted(self.other_odd.items()):
            read = per_label[label, "read"]
            share = WBC_OTHER_PLANE_SHARE if label == "wbc" else OTHER_PLANE_SHARE
            vouching = label == "ctc" and name in self.vouching
            if n < MIN_ODD or n < share * read or (vouching and binom.sf(
                    n - 1, read, VOUCHING_SHARE) >= VOUCHING_CHANCE) or (
                    label == "wbc" and (name != wbc_plane or margins[name] <= 0)):
                continue
            right = (f"about a fifth of a right folder's do: a CTC that lost CK lights {name}"
                     if vouching else "a folder of these markers shows a few %")
            said.append(f"{n} of {read} crops labelled {label} light {name} and not "
                        f"{own[label]} ({right}): are {own[label]} and {name} swapped in "
                        "panel.json or in some files?")
        return said

    def ck_cd45_warning(self) -> str | None:
        """The CK and CD45 swap in words, where both labels' crops read so past
        :data:`ODD_SHARE`, or a sample's alone (:meth:`swapped_samples`)."""
        per_label, per_sample = self._sums()
        folder = all(per_label[label, "read"] and per_label[label, "odd"] >= MIN_ODD
                     and per_label[label, "odd"] >= self.share * per_label[label, "read"]
                     for label in self.judged)
        samples = self.swapped_samples()
        if not folder and not samples:
            return None
        # The samples that read swapped by themselves, else those most of the crops are of.
        most = sorted((s for s, kind in per_sample if kind == "odd"),
                      key=lambda s: -per_sample[s, "odd"])
        named = ", ".join(f"{sample} ({per_sample[sample, 'odd']})"
                          for sample in (samples or most)[:SAMPLES_NAMED])
        return (f"{per_label['ctc', 'odd']} of {per_label['ctc', 'read']} crops labelled ctc "
                f"light CD45 and not CK, and {per_label['wbc', 'odd']} of "
                f"{per_label['wbc', 'read']} labelled wbc CK and not CD45 ("
                + ("a display export's right folder shows up to about a tenth of the ctc "
                   "crops so; its leukocytes' faint CD45 is not judged" if self.judged ==
                   ("ctc",) else "a folder of these markers shows about 2 % of each")
                + "): are CK and CD45 swapped in some files "
                f"(another scanner's channel order)? Most are of sample(s) {named}")
