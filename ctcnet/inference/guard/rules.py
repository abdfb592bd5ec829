"""The marker guard's thresholds in one frozen record (:class:`GuardRules`), the default
(:data:`RULES`), and the names the flags, calls and panel roles go by.

Every level the guard compares a measurement with lives here, with the evidence it was chosen
on; the measurements (:mod:`.measurements`) and the flags (:mod:`.flags`) take a ``GuardRules``
instead of keyword arguments. The one setting that varies with the input is the leak
allowance (scans against display exports: :func:`leak_allowance`, :meth:`GuardRules.for_crops`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ctcnet.nn.calls import COUNTED_CLASSES

MARKER_FLAGS = ("cd45_positive", "no_dna", "dna_copies_ck", "low_dna", "no_ck")
FLAGS = MARKER_FLAGS + ("out_of_focus", "one_cell", "unusual", "possible_ctc")
# The calls the guard can hold: those a sample's result counts.
GUARDED_CLASSES = COUNTED_CLASSES
# The column of ``review_flags`` that marks a CTC by its markers alone (see ``marker_calls``).
MARKERS_CTC = "markers_ctc"
# The column of ``review_flags`` that marks a ``ctc`` call whose doubt toward a cluster its
# markers settle (one CTC by the definition of ``MARKERS_CTC``, no partner, one nucleus):
# that doubt does not queue it.
MARKERS_VOUCH = "markers_vouch"
# The column of ``review_flags`` (and of an events table) that names a ``cluster`` call's
# partners as its markers read them (``Evidence.cluster_partner``): ``neutrophil``,
# ``leukocyte``, ``platelet``, several joined by '+', ``homotypic`` (no partner marker, two
# nuclei or more: CTCs together), ``none`` (one cell: the ``one_cell`` flag); '' on other calls
# and where unread.
CLUSTER_PARTNER = "cluster_partner"
# Calls checked for a missed CTC (the guard's other direction).
MISSED_CTC_CALLS = ("wbc", "debris")
# The network's probability of a CTC (before the cartridge's prior) a ``debris`` call needs
# for the markers' own call to count it on a cartridge (``markers_overrule``; a ``wbc`` call
# needs a CTC or cluster as likely as its call). Set on the 20 full-size counting cartridges
# (175 frames, 178 CTCs), where the markers made 49 debris calls ``ctc``, 8 of them CTCs and
# 41 not (31 bare nuclei, 8 CK+ blobs; p(ctc) 0.00-0.93, median 0.58): counting every one took
# the count within tolerance to 11 of 20 and the >= 5 cut-off to 17; none, 17 and 20; those
# at 0.7-0.8 or more, 18 and 20 (0.85 and over, 17). The 10-frame counting cartridges,
# CTC-rich, count the same at any level up to 0.8 (19 and 20 of 20), and so do 10 other
# full-size cartridges (seed 63000: 8 and 10 of 10 either way). A cluster the network gives
# that much counts too, on one cell (``lone_ctc_cell``): hand-drawn CTCs placed in scans read
# p(cluster) 0.94-0.999 and the prior filed them as debris, where a cluster call on one cell
# was already a CTC; on 20 cartridges of 88 frames (510,883 events) none of the 305 debris
# calls with a CTC's markers had a cluster at 0.75 (at most 0.67).
MARKERS_DEBRIS_CTC = 0.75
# Calls the network's own doubt may turn into a possible CTC.
DOUBTED_CALLS = ("wbc", "debris", "cluster")
# The markers a lone CTC lacks (``EXCLUSION_ROLES``, from the marker names) and the dyes it
# carries, whose leaks are all that may show in those channels. Fitting the
# leaks of the others too would explain a neutrophil's dim CD45 away as a copy of its own
# CD66b (or of unspecific CK): in a simulated cartridge whose leukocytes carry CK, half the
# neutrophils were flagged possible_ctc that way (4,400 events; docs/robustness_matrix.md).
CTC_DYE_ROLES = ("epithelial", "nucleus")
# The DNA and focus references: leukocyte calls of the same frame (or sample).
REFERENCE_CLASS = "wbc"
# The levels of a nucleus edge (shares of its peak: low, contour, high; see shapes.edge_width).
EDGE_LEVELS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class GuardRules:
    """The guard's thresholds (noise units of a channel unless named otherwise).

    Attributes
    ----------
    cd45_level
        CD45 positivity: upper quartile of CD45 over the CK area once the leaks are removed;
        also the level of the exclusion markers round it for ``possible_ctc``.
    cd45_ceiling_share
        The share of a ``ctc`` call's CK area (without one, its cell's core) with CD45 at the
        camera's ceiling that makes it CD45 positive as well (``cd45_at_ceiling``; None: not
        read so). Saturated pixels hold no ratio and stay out of the quartile, so an area
        all clipped read no CD45: an aggregate saturated in every channel, CD45 six times a
        leukocyte's, was counted as a CTC on a lab's cartridge. A leak (at most ``max_leak``
        of its dye's counts) does not reach the ceiling; a display export's 255 is its
        viewer's stretch, not the camera's, so :meth:`for_crops` sets None there. On the
        golden cartridge, the export families (tight exports, hand-drawn composites) and
        exported-style cells placed into two cartridges, no call or review flag changed.
    export_cd45_level
        ``cd45_level`` for display exports (8-bit RGB composites). JPEG's crosstalk of a
        bright CK plane into the CD45 plane, against the small noise an 8-bit plane leaves,
        reads 2-3 noise units over a CTC's CK area where its 16-bit crop reads 0.1-0.3, while
        a leukocyte's CD45 reads far above. On the fitting sets (scan-resolution thumbnails,
        one display range per sample and per image, seed 49060; tight exports at 0.05-0.2
        um/px, seed 38000; 150 a class) CTCs over the line 37 / 36 -> 26 / 29 of 150 on the
        thumbnails and 4 / 1 / 1 / 1 -> 4 / 1 / 1 / 0 on the tight exports, leukocytes under
        it 22 / 14 / 38 / 35 / 38 / 15 -> the same but one more on the per-image thumbnails; at
        4, no more leukocytes under it either, so 3 keeps a margin.
    dna_level
        The DAPI a nucleus must reach inside the CK area.
    dna_share
        The least DAPI content a nucleus holds, as a share of the median leukocyte's of its
        group. 0.08: a CTC fragment's speck holds 0-14 % of a leukocyte's DAPI content, the
        smallest simulated CTC nuclei from 3 % (a biological nucleus holds 50 % or more: the
        simulator draws CTC nuclei smaller and dimmer than biology would, so the share is set
        low to hold almost none of them: 6 of 1,500 simulated CTCs, and 88 % of fragments
        with a speck; docs/robustness_matrix.md, the marker guard).
    focus_ratio
        The widest nucleus edge a ``ctc`` call may have, as a multiple of its group's median
        leukocyte's. 1.8: on simulated crops (400 a class, 8 samples) single CTCs reach 1.56
        and leukocytes 1.72 of their sample's median; out-of-focus blobs with DAPI over 10
        noise units sit at 1.5-3.5 (97 % above 1.8), over 5 units 87 %. On the card's
        held-out test it holds 10 of ~1,430 right CTC calls, in samples where bright CK bleeds
        into DAPI and widens the nucleus's lower edge.
    copy_level
        The least structure of its own (``dna_own_structure``) the DAPI inside the CK area
        must have. 0.2: on simulated crops at model scale (seeds 7 and 11, 1,800 CTCs and
        clusters, 16 samples) it holds 4 CTCs and clusters (0.2 %: dim or textured CK over a
        nucleus), and of the debris that passes ``no_dna`` 82-87 % of tdEVs (CK leaking into
        DAPI), 58-79 % of autofluorescent bodies and 55-81 % of out-of-focus blobs (one body
        lit in every channel); copies sit mostly at 0.0-0.4 (median 0.15: the noise's own
        spread, a little correlated by resampling to model scale), CTCs and clusters mostly
        above 0.4 (median 2.7). On the card's held-out test it holds 10 more right CTC calls
        (0.7 %), in samples with coarse pixels or dim nuclei.
    body_level
        Under it in both directions (DAPI over a copy of CK, ``dna_own_structure``, and CK
        over a copy of DAPI, ``ck_own_structure``), neither channel has a shape of its own:
        one body lit in both, not a nucleus inside a cytoplasm, and ``dna_copies_ck`` fires
        too. 0.4, the top of the copies' own spread (above): a copy read one way alone must
        stay under ``copy_level`` to spare CTCs whose dim or textured CK over a nucleus reads
        low there, but few CTCs read low both ways. Where CK leaks strongly into DAPI, a
        vesicle's DAPI, a copy blurred a little wider by the DAPI optics, reads 0.2-0.4 both
        ways. On 20 cartridges of 40 frames of seed 64000 (`scripts/cartridge_counts.py`) the
        wrong CTC calls counted fell from 0.333 to 0.068 per 1,000 events (58 tdEVs counted
        on one cartridge of 8 CTCs, 9 now), on seed 63000 from 0.082 to 0.043, on seed 61000
        none changed, and no right CTC call more was held on the three; on the default
        model's held-out test (1,500 a class, the look it was trained on) it holds 48 of
        1,491 right CTC calls instead of 35 (at 0.3: 40, with 0.158 per 1,000 on seed 64000).
    copy_shift_um
        How far out of register the copy tests (``copy_level``, ``body_level``) look for a
        copy: each event's CK is lined up with its DAPI within this many um (whole pixels at
        model scale, ``copy_move_y``/``copy_move_x``), and the median move of a frame's (or
        sample's) events, where most of them agree, is the planes' registration, by which the
        copy is moved before DAPI and CK
        are compared (``REGISTERED_COLUMNS``; a CTC's body, a nucleus and a cytoplasm each
        with a shape of its own, reads them too). A dye's leak is imaged in the exposure of the
        channel it leaks into, so a plane out of register moves the copy with it, and a
        copy's shifted edge reads as a shape of its own. 1.3 um: 2 pixels at 0.64 um/px. On
        a counting cartridge (30 CTCs, 10 frames) with CK moved 1, 2 or -2 pixels or DAPI 2
        (0.7-1.4 um), bare nuclei and autofluorescent bodies whose CK copies their DAPI were
        counted as 3, 31, 15 and 9 CTCs more; read so, none (the 30 counted). A frame in
        register reads a median move of 0 and the copy tests as before: the 20 counting
        cartridges come out identical. Moving each event's copy by its own best move
        instead, a nucleus off its cytoplasm's centre is lined up too: it held 1 of their
        197 CTCs and lowered simulated CTCs' own shape by a quarter (median 2.6 -> 1.9).
    register_min_events
        The fewest events of a frame (or sample) with a nucleus in a CK area to compare that
        read its registration; with fewer, the planes are taken as in register.
    register_min_share
        ... and the share of them that must lie off the same way as their median move (per
        axis) for it to be the planes': on 77 frames of 7 simulated cartridges with CK or
        DAPI 1 or 2 px off, 0.73-1.0 of the events read so; in exported single cells, whose
        nuclei lie off their cytoplasms' centres every way, the median alone read a move on
        17 % of the export families' samples, with 0.51-0.69 of their events that way.
    max_leak
        The most of another dye's counts that its leak into a channel may carry (the share a
        copy of its pattern may take off before what is left counts as the channel's own
        marker). In a scan that is the dyes' spillover, 1-10 % per ordered pair.
    export_max_leak
        ``max_leak`` for display exports (8-bit RGB composites), where each plane was
        stretched by the viewer on its own, so a leak's share is set by the stretch, not by
        the dyes: published dim-CK CTCs show a copy of their CK at 15-30 % in the CD45 plane,
        which is no CD45. At 0.2, 83 % of hand-drawn CTCs (30 % of them with such a copy) read
        CD45-negative and 1 % of simulated CK+CD45+ leukocytes' exports do; at 0.12 72 % and
        1 %, at 0.25 91 % and 2 %, at 0.35 93 % and 3 % (scripts/drawn_composites.py; the
        shape-swap family's CK+CD45+ set).
    copy_leak
        The most of CK's counts that a leak into CD45 may carry where CD45 over the CK area
        is no more than a copy of CK (its own shape, ``shapes.own_structure``, under
        ``cd45_copy_structure``); elsewhere ``max_leak`` holds. 0: never more than
        ``max_leak`` (scans: a dye's spillover is fixed by the filters).
    export_copy_leak
        ``copy_leak`` for display exports. A copy of CK in the CD45 plane at 15-30 % is how
        published dim-CK CTCs look; on hand-drawn ones (``scripts/drawn_composites.py``, seed
        0, 60 a kind, read with ``fit``) its share reads back at 0.14-0.38 at model scale.
    known_leak_margin
        Where the model's panel states an instrument's known leak into a channel
        (``Channel.leaks_in``, measured on a lab's labelled CTCs by ``ctcnet finetune``), the
        channel's allowance is that leak times this margin when that is more than
        ``max_leak`` (:meth:`leak_cap`). 1.2: on a simulated scanner whose CK leaks 30 % into
        CD45 (``scripts/adaptation_curve.py``), the per-CTC ratios read 0.29-0.36 (10th to
        90th percentile, median 0.31) and its CK+ leukocytes' 0.42 and more (median 1.5).
    scan_leak_margin
        On a scan whose CK leak into CD45 was measured (``spillover.leak_check``), a counted
        ``ctc`` call whose CD45 needs more than this multiple of that leak to read negative
        (``cd45_leak_needed``) is held as ``cd45_positive``
        (:mod:`ctcnet.inference.scan_leak_hold`). 1.3: on the 20 counting cartridges (10
        frames, measured leaks 0-0.097) every counted CTC call needs at most 0.88x its scan's
        leak, and the measured leak reads 0.84x the true one at worst over 0.01; the
        CK+CD45+ cells painted into a scan leaking 5.7 % that it holds need 1.4-2.1x.
    scan_leak_floor
        ... and never less than this share of CK's counts: under a leak of 1-2 % the measured
        leak may read half the true one (0.0052 for 0.0064), or none (then nothing is held).
    scan_leak_min_events
        The fewest CK-bright events the scan's leak must be read on for that hold; with fewer,
        ``max_leak`` alone holds.
    cd45_copy_structure
        The shape of its own under which CD45 over the CK area counts as a copy of CK. The
        hand-drawn copies read 0.16-1.25 (median 0.4, as DAPI copies of CK sit at 0.0-0.4:
        ``copy_level``); a leukocyte's CD45 is a membrane with a shape of its own. Of simulated
        CK+CD45+ leukocytes' exports (0.1 um/px) whose CD45 a copy of CK under 0.4 could
        carry, those of seed 48500 (400 cells) read 1.37 and more, but 4 of 1,000 of seed
        48130 read 0.72-0.97 (at 1.0 they were called ``ctc``: 1.7 % instead of 1.3 %).
        At 0.5 no CK+CD45+ call changes on seeds 48130 and 48700 (1,000 each), the
        shape-swap and tight export families' calls do not change, and of the 57 hand-drawn
        CTCs with a copy 24 were called ``ctc`` before and 42 now (``fit``; ``auto`` 10 and
        17). Every drawn CTC without a copy is called ``ctc``.
    possible_ctc_min_area_um2
        The least CK area of a possible missed CTC: a cell over 4 um across (the CellSearch
        size rule), pi * 2^2 um^2.
    possible_ctc_ck_peak
        ... and its CK peak (3x3 mean): clearly positive. At 5, the faint green
        autofluorescence of neutrophils passed (2 % of simulated leukocytes flagged); the CTCs
        the default network misses reach 14 and more (simulated held-out set, seed 424242).
    possible_ctc_proba
        The other route to that flag, the network's own doubt: a ``wbc``, ``debris`` or
        ``cluster`` call to which it still gives a CTC at least this probability under equal
        priors (calibrated, before any decision rule). It finds the CTCs whose markers the
        marker route cannot vouch for: dim CK (peaks of 3-7 noise units) and apoptotic CTCs
        whose fragmented nucleus reads as two cells. Chosen on a simulated set of its own (750
        a class, seed 47000, neither training nor any card's), with the route's first form
        (DNA and no exclusion marker only): at 0.1 core3 showed 99.6 % of true CTCs (98.8 %
        without the route), for 0.9 % more events sent to review; the default network 99.1 %
        (98.9 %), for 0.4 % more. At 0.05 the extra load was 1.5 % and 0.7 %; at 0.2 core3
        showed 99.5 %. With the route's checks it shows 99.2 % and 99.07 % there. On 20
        full-size cartridges it adds about 1,000 events to the guard's 3,343 (0.1 % of
        events).
    possible_ctc_doubt_ck_peak
        ... and the least CK such a call must show (3x3 mean peak): CK positive, if dimly.
        Without it, bare nuclei (DAPI, no CK) the network half believed were 7,105 of the
        15,397 events the route showed on 20 full-size cartridges; the dim CTCs it is for
        reach 2.9-7.
    possible_ctc_doubt_ck_structure
        ... and the least structure of its own a dim CK (under ``possible_ctc_ck_peak``) must
        have over the best copy of DAPI (``ck_own_structure``) on that route: a dim CK that is
        only DAPI leaking into the CK channel is no cytoplasm. 0.4, ``body_level``: the top of
        the copies' own spread. At ``copy_level``'s 0.2, bare nuclei (DAPI alone) whose DAPI
        leaks 4 % into CK were 1,083 of the 1,117 events the route showed on a simulated
        175-frame scan (2.3 % of its events; 1,015 of them read 0.2-0.4, 915 of those with CK
        under 10 noise units); at 0.4 the scan shows 0.66 % of its events, not 2.50 %, its
        CTCs counted or shown as before. A clearly positive CK is read at ``copy_level`` as
        before: the demo's bright CTC beside a debris blob reads 0.40 (its member event is
        shown only so).
    markers_cd45_band
        For the markers to call a cartridge's ``wbc`` call ``ctc`` on their own
        (``MARKERS_CTC`` on a cartridge; crop sets ask ``crop_markers_cd45_core``), CD45
        over the CK area must read as background: its median and
        upper quartile of excess (``cd45_core``, ``cd45_over_ck``) within this many noise
        units of zero, half ``cd45_level``. A reading below it is as telling as one above:
        the leak fit took more than the CD45 channel holds, because that channel has CK's
        shape (a leukocyte's dim CD45 under bright non-specific CK). On the 20 full-size
        counting cartridges the 13 CTCs this call made read 0.18-0.53 and -0.05-0.07; the 3
        leukocytes 1.65 / 1.08, -3.79 / -5.70 and -2.55 / -3.75 (checked on those same
        cartridges: no independent set had such calls).
    crop_markers_cd45_core
        For the markers to call a crop set's ``wbc`` (or ``debris``) call ``ctc`` on their own
        (``MARKERS_CTC`` on a crop set), CD45's median excess over the CK area
        (``cd45_core``, noise units, once the leaks are removed) must be no more than this
        (None: no more than ``cd45_level`` asks; scan crops, whose CK+CD45+ leukocytes no
        shipped model calls ``ctc``). :meth:`for_crops` sets it to
        ``export_markers_cd45_core`` for display exports.
    export_markers_cd45_core
        ``crop_markers_cd45_core`` on display exports: CD45 there no more than the leaks
        explain, within what a JPEG's noise adds. A CK copy in an export's CD45 plane (a
        dim-CK CTC's, as a viewer's stretch shows it) is taken off with the leak, and more:
        hand-drawn CTCs whose CD45 plane holds one read -0.8 to 0.4 (median -0.4; saved as
        JPEG, up to 0.09); a leukocyte's dim CD45 under bright non-specific CK is left over
        it (median 0.1, upper quartile 0.5). Unlike a cartridge's band, a reading below zero
        does not stop the call: on an export it is the CK copy taken off. (On a scan's noise
        a median over the CK area scatters round zero either way.) Measured on CK+CD45+
        leukocyte exports (1,000 a seed, seeds 48150 and 57120, ``fit`` / ``auto``): ``ctc``
        calls 17 / 17 -> 12 / 10 and 9 / 11 -> 7 / 9 (0.95 % of the 2,000 either way, from
        1.3 and 1.4 %); hand-drawn CTCs called ``ctc`` 83 / 76 -> 81 / 76 of 120 (seed 0), 84 /
        74 of 120 and 17 / 17 of 24 unchanged (seeds 1, 3; each of the others still shown as
        a possible CTC). At 0 it was 16 of 2,000, but a JPEG-saved CTC at 0.09 was lost.
    possible_ctc_structure
        The least shape of its own that DAPI (over CK) and CK (over DAPI) must each have for
        a possible CTC: a nucleus inside a cytoplasm. At ``copy_level``'s 0.2,
        autofluorescent bodies, blobs, fibres and edge-cut cells passed (2.5 % of the events
        of simulated full-size cartridges); at 1.0, 0.13 % (CTC nuclei: median 2.7).
        The markers' call (``MARKERS_CTC``) asks it of both channels wherever the flag
        asks less.
    shown_ctc_structure
        Where set, the least shape of its own for ``possible_ctc``'s marker route to show a
        ``wbc`` or ``debris`` call to a person (None: ``possible_ctc_structure``); the
        markers' call still asks ``possible_ctc_structure``. :meth:`for_crops` sets it to
        ``body_level`` for display exports, the level under which both channels read as no
        more than copies of each other (one body lit in both). A folder of crops each scaled
        to fit its cell, read at one scale (``--pixel-size auto``), leaves a small CTC a few
        model pixels of nucleus and cytoplasm whose shapes read 0.4-0.8 of their own; an
        export has none of a scan's autofluorescent bodies that 1.0 keeps off a cartridge's
        review. Hand-drawn CTCs read with ``auto`` and shown (called ``ctc`` or flagged):
        113 -> 119 of 120, 111 -> 117 of 120, 22 -> 24 of 24 (seeds 0, 1, 3); of the
        non-CTCs of the shape-swap export family (900 a read) and CK+CD45+ leukocyte exports
        (2,000), one more sent to a person; no call changed.
    nucleus_in_ck_share
        The least share of a CTC's nucleus (``nucleus_in_ck``) inside or enclosed by its CK
        area, for its markers to make it a CTC (``markers_of_ctc``: the markers' call, the
        ``possible_ctc`` flag's marker route, the ``unusual`` flag's spared ``ctc`` calls):
        a cell's nucleus lies within its cytoplasm (CellSearch asks half of it). On a scan's
        optics CK covers the nucleus (the cytoplasm above and below it): on the 20 counting
        cartridges (10 frames) the CTCs with a CTC's CK and DNA read 0.42 and more, clusters
        0.46 and more, while a bare nucleus beside a speck of CK-channel signal reads less
        (51 % of them under 0.3, as 42 % of fragments and 58 % of tdEVs; 0.5 % of the
        leukocytes with such markers). At 0.3 rather than 0.4 a CTC drawn in a leukocyte's
        shape and placed into a scan (0.35: a thin CK rim open on one side) is still called
        by its markers, and the counting cartridges lose as much of their review list (0.66
        -> 0.49 % of the events, against 0.48 %); at 0.2 as much again, but 20 dense
        cartridges made 24 false CTC calls against 21. None (the setting for display exports,
        :meth:`for_crops`): not asked. A published high-magnification CTC shows its CK beside
        or round the nucleus, not over it: 25 % of the hand-drawn CTCs read under 0.4.
    around_ck_um
        How far past the CK area the exclusion markers are read for ``possible_ctc`` (a
        membrane ring round a nucleus).
    min_reference_events
        The fewest leukocyte calls of a frame (or sample) that make a DNA and focus reference.
    copy_min_area_um2
        The least CK area (~20 model pixels) over which DAPI is compared with a copy of CK: a
        few pixels cannot tell a shape from noise.
    max_clipped_share
        ... nor over a CK area clipped at the scanner's ceiling in more than this share of it.
    partner_min_um2
        A ``cluster`` call has a partner attached (a leukocyte, a neutrophil, platelets: no
        ``one_cell`` flag) where an exclusion marker is over ``cd45_level`` on at least this
        much of a band round its CK area (``partner_um2``), leaks of CK and DAPI taken off. A
        platelet 2-3 um across at the CK edge lights 2-5 um^2 of it; noise at that level
        lights none (6 standard deviations of a 3x3 mean).
    partner_gap_um
        ... a band that leaves out the CK area and this much round it: CK leaking at 5-10 %
        into a channel registered 1-2 pixels off (which the leak fit, taking a copy that lines
        up, leaves half of) lit up to 66 um^2 of the CK area grown by 2 um round a spindle
        CTC, and at most 4.5 um^2 (1 of 12 such crops over 2) beyond 1 um ...
    partner_reach_um
        ... and reaches this far: a leukocyte attached at one side lights 10-12 um^2 of the
        band to 3 um, platelets on the rim about 3 (drawn cells: 96-100 % of CTCs with a
        leukocyte, a neutrophil or platelets attached read a partner, no single CTC or CTC
        doublet did).
    nucleus_min_half_width_um
        A nucleus counted in a ``cluster`` call's DAPI mask (``nuclei``,
        :func:`.nuclei.count_nuclei`) lies at least this far inside the mask's outline (a
        nucleus at least twice as wide) ...
    nucleus_min_dip_um
        ... and rises at least this far above the waist between it and any other: the
        distance to the mask's outline dips that much between two touching nuclei, and less
        along one elongated nucleus's ridge (on a pixel grid a flat ridge carries several
        maxima a fraction of a pixel apart, which a count of maxima read as two to six
        nuclei). At 0.64 um/px (the guard reads crops at model scale) 0.64 um counts one
        nucleus in ellipses up to 3:1 at all of 72 orientations (4:1: 83 %), and two in
        round pairs whose centres lie 1.8 radii apart, about half of those 1.5 radii apart
        and few closer (such doublets read as one cell and are flagged for a person). On
        the spindle CTCs of ``scripts/spindle_ctcs.py`` (with the partner read in the band
        of ``partner_gap_um`` to ``partner_reach_um``) it flags 159 of the default model's
        164 cluster calls and 172 of core3's 177, and 23 of 295 and 27 of 292 true cluster
        calls.
    area_level
        The CK area's least level (and the DAPI level of the nucleus mask).
    radius_um
        The disk round the crop centre that the measurements read.
    """

    cd45_level: float = 2.0
    cd45_ceiling_share: float | None = 0.05
    export_cd45_level: float = 3.0
    dna_level: float = 3.0
    dna_share: float = 0.08
    focus_ratio: float = 1.8
    copy_level: float = 0.2
    body_level: float = 0.4
    copy_shift_um: float = 1.3
    register_min_events: int = 10
    register_min_share: float = 0.7
    max_leak: float = 0.12
    export_max_leak: float = 0.2
    copy_leak: float = 0.0
    export_copy_leak: float = 0.4
    known_leak_margin: float = 1.2
    scan_leak_margin: float = 1.3
    scan_leak_floor: float = 0.02
    scan_leak_min_events: int = 50
    cd45_copy_structure: float = 0.5
    possible_ctc_min_area_um2: float = 12.5
    possible_ctc_ck_peak: float = 10.0
    possible_ctc_proba: float = 0.1
    possible_ctc_doubt_ck_peak: float = 3.0
    possible_ctc_doubt_ck_structure: float = 0.4
    possible_ctc_structure: float = 1.0
    shown_ctc_structure: float | None = None
    markers_cd45_band: float = 1.0
    crop_markers_cd45_core: float | None = None
    export_markers_cd45_core: float = 0.1
    nucleus_in_ck_share: float | None = 0.3
    around_ck_um: float = 2.0
    min_reference_events: int = 10
    copy_min_area_um2: float = 8.0
    max_clipped_share: float = 0.05
    partner_min_um2: float = 2.0
    partner_gap_um: float = 1.0
    partner_reach_um: float = 3.0
    nucleus_min_half_width_um: float = 1.6
    nucleus_min_dip_um: float = 0.64
    area_level: float = 2.0
    radius_um: float = 12.0

    def with_leak(self, max_leak: float | None) -> GuardRules:
        """These rules with another leak allowance (``None``: unchanged)."""
        return self if max_leak is None or max_leak == self.max_leak else \
            replace(self, max_leak=float(max_leak))

    def cd45_positive(self, col: Callable[[str], object]):
        """Per event, whether CD45 reads positive: over its level (``cd45_level``) over the CK
        area, over the cell's core where there is no CK area, or at the camera's ceiling over
        ``cd45_ceiling_share`` of that area (None: not read). ``col`` gives a measurement
        column by name, as numpy arrays or as torch tensors (the markers' ONNX graph reads
        the same line); NaN is not read, so not positive. The CellSearch line of the
        ``cd45_positive`` flag, of a crop set's fused calls and of the cartridge fusion."""
        with np.errstate(invalid="ignore"):
            positive = (col("cd45_over_ck") > self.cd45_level) | \
                (~(col("ck_area") > 0) & (col("cd45_over_cell") > self.cd45_level))
            if self.cd45_ceiling_share is not None:
                positive = positive | (col("cd45_at_ceiling") >= self.cd45_ceiling_share)
        return positive

    def for_crops(self, exported: bool) -> GuardRules:
        """These rules for crops that are display exports (``exported``: their leak
        allowances, :func:`leak_allowance` and ``export_copy_leak``, the CD45 line at
        ``export_cd45_level`` and no ``cd45_ceiling_share``, the markers' call's
        ``export_markers_cd45_core``, the
        flag's ``shown_ctc_structure`` at ``body_level`` and no ``nucleus_in_ck_share``) or
        scans."""
        rules = self.with_leak(leak_allowance(exported, self))
        return replace(rules, cd45_level=self.export_cd45_level, cd45_ceiling_share=None,
                       copy_leak=self.export_copy_leak,
                       crop_markers_cd45_core=self.export_markers_cd45_core,
                       shown_ctc_structure=self.body_level, nucleus_in_ck_share=None) \
            if exported else rules

    def leak_cap(self, panel, channel: int) -> float:
        """The most of another dye's counts that its leak into ``panel``'s channel
        ``channel`` may carry: ``max_leak``, or the largest known leak into it
        (``Channel.leaks_in``) times ``known_leak_margin`` where that is more."""
        known = max(panel.channels[channel].leaks_in.values(), default=0.0)
        return max(self.max_leak, self.known_leak_margin * float(known))

    def copy_shift_px(self, pixel_size_um: float) -> int:
        """``copy_shift_um`` in whole pixels of ``pixel_size_um``."""
        return int(round(self.copy_shift_um / pixel_size_um))

    @property
    def flag_structure(self) -> float:
        """The least shape of its own for ``possible_ctc``'s marker route: ``shown_ctc_structure``
        where set, else ``possible_ctc_structure``."""
        return self.possible_ctc_structure if self.shown_ctc_structure is None else \
            min(self.shown_ctc_structure, self.possible_ctc_structure)


RULES = GuardRules()

def leak_allowance(exported: bool, rules: GuardRules = RULES) -> float:
    """``max_leak`` for crops that are display exports (``exported``) or scans."""
    return rules.export_max_leak if exported else rules.max_leak
