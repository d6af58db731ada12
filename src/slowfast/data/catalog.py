"""The real datasets as their publishers serve them: shipped download manifests and the disk each one needs.

``manifests/*.yaml`` (in the repository) are *generated* from the facts below by ``slowfast datasets --write``
and read by the existing download stage unchanged (``download.manifest: manifests/kinetics400.yaml``); every item
carries a YAML comment citing where its URL is published. A test regenerates them and compares, so the files and
these facts cannot drift apart.

What the archives hold (their real member layout) and where the download stage's extraction (each archive is
extracted beside itself, :func:`slowfast.data.download.download_manifest`) puts it, i.e. the layout
:mod:`slowfast.data.sources` reads:

* **Kinetics-400** (CVDF, ``k400_downloader.sh``): ``train/part_<i>.tar.gz`` (242 parts), ``val/part_<i>.tar.gz``
  (20), ``test/part_<i>.tar.gz`` (39) hold the clips *at the archive root* (``<youtube_id>_<s:06d>_<e:06d>.mp4``;
  ``k400_extractor.sh`` runs ``tar zxf part.tar.gz -C k400/train``) → ``kinetics/{train,val,test}/<clip>.mp4``;
  ``replacement_for_corrupted_k400.tgz`` holds ``replacement_for_corrupted_k400/<clip>.mp4`` →
  ``kinetics/replacement/replacement_for_corrupted_k400/<clip>.mp4``, which :class:`~slowfast.data.sources.
  KineticsSource` prefers over a split's file of the same name; the CSVs go to ``kinetics/annotations/``.
* **Kinetics-600** (CVDF, ``k600_downloader.sh``): the tarballs are listed only in ``k600_{train,val,test}_path.txt``
  on the mirror, which is not reachable from here, so the shipped manifest holds the annotations and those three
  lists; ``slowfast datasets --from-list LIST --dest-prefix kinetics/train`` turns a downloaded list into the
  tarball manifest (the download stage itself fetches only manifest URLs, never URLs found inside a download).
  Train and val archives are one per class, and the lists leave the label's spaces raw (``.../train/pull
  ups.tar.gz``; pytorch/vision#5564), so ``--from-list`` percent-encodes each URL's path; test archives are
  ``part_<i>.tar.gz`` (cvdfoundation/kinetics-dataset#22). The archives' member layout is not published;
  extraction keeps whatever it is below ``kinetics/<split>/``, and :class:`~slowfast.data.sources.KineticsSource`
  reads the clips there or one class folder deeper. The mirror's ``train.csv`` and ``val.csv`` are incomplete
  (cvdfoundation/kinetics-dataset#33: ~15k of ~29k val clips); clips they do not name are not read.
* **Charades v1** (the Allen AI dataset page): ``Charades_v1_480.zip`` holds ``Charades_v1_480/<id>.mp4`` →
  ``charades/Charades_v1_480/<id>.mp4``; ``Charades.zip`` holds ``Charades/Charades_v1_{train,test}.csv``,
  ``Charades/Charades_v1_classes.txt`` → ``charades/Charades/...``, a folder :class:`~slowfast.data.sources.
  CharadesSource` reads as well as the root.
* **AVA v2.2**: the 299 train+val movies of CVDF's ``ava-dataset`` mirror, ``trainval/<file name>`` (full movies,
  mkv/mp4/webm) → ``ava/videos/<file name>`` (read with ``ava.video_start_sec: 0``; the decode stage seeks to the
  keyframe windows); ``ava_v2.2.zip`` holds its files at the archive root (``ava_train_v2.2.csv``,
  ``ava_val_v2.2.csv``, ``ava_action_list_v2.2_for_activitynet_2019.pbtxt``,
  ``ava_{train,val}_excluded_timestamps_v2.2.csv``, ...) → ``ava/annotations/``; the movie list itself →
  ``ava/ava_file_names_trainval_v2.1.txt``.

Sizes and checksums: none of these publishers gives per-file sizes or checksums, so the items have none (the
download stage then verifies by the transfer's Content-Length only). Published totals are quoted per dataset with
their source; the AVA movie list comes from a public copy of the mirror's list (cited), Kinetics-400's part counts
from third-party mirrors of the path lists (cited): both are facts to re-check against the mirror.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import yaml

log = logging.getLogger(__name__)

CVDF_KINETICS = "https://github.com/cvdfoundation/kinetics-dataset"
CVDF_AVA = "https://github.com/cvdfoundation/ava-dataset"
CHARADES_PAGE = "https://prior.allenai.org/projects/charades"
AVA_PAGE = "https://research.google.com/ava/download.html"

#: The AVA train+val movies as listed in the mirror's ``ava_file_names_trainval_v2.1.txt`` (transcribed from the
#: public copy in DdoQuan/quac.github.io, ``ava_file_names_trainval_v2.1.txt``; 299 names, 235 train + 64 val).
AVA_TRAINVAL_FILES = """
5BDj0ow5hnA.mp4 55Ihr6uVIDA.mkv 2PpxiG0WU18.mkv 1j20qq1JyX4.mp4 -5KQ66BBWC4.mkv _-Z6wFjXtGQ.mkv _145Aa_xkuE.mp4
_7oWZq_s_Sk.mkv _a9SWtcaNj8.mkv _Ca3gOdOHxU.mp4 _dBTTYDRdRQ.webm _eBah6c5kyA.mkv _ithRWANKB0.mp4 _mAfwH6i90E.mkv
-FaXLcSFjUI.mp4 -IELREHX_js.mp4 -OyDO1g74vc.mp4 -XpUuIgyUHE.mp4 -ZFgsrolSxo.mkv 053oq2xB3oU.mkv 0f39OWEqJ24.mp4
0wBYFahr3uI.mp4 1ReZIMmD_8E.mp4 26V9UzqSguo.mp4 2bxKkUgcqpk.mp4 2DUITARAsWQ.mp4 2E_e8JlvTlg.mkv 2FIHxnZKg6A.webm
2fwni_Kjf2M.mkv 2KpThOF_QmE.mkv 2qQs3Y9OJX0.mkv 3_VjIRdXVdM.mkv 32HR3MnDZ8g.mp4 3IOE-Q3UWdA.mp4 4gVsDd8PV9U.mp4
4k-rTF3oZKw.mp4 4Y5qi1gD2Sw.mkv 4ZpjKfu6Cl8.mkv 5LrOQEt_XVM.mp4 5milLu-6bWI.mp4 5MxjqHfkWFI.mkv 5YPjcdLbs5g.mkv
6d5u6FHvz7Q.mkv 7g37N3eoQ9s.mkv 7nHkh4sP5Ks.mkv 7T5G0CmwTPo.mkv 7YpF6DntOYw.mkv 8aMv-ZGD4ic.mkv 8JSxLhDMGtE.mkv
8nO5FFbIAog.webm 8VZEwOCQ8bc.mkv 914yZXz-iRs.mkv 9bK05eBt1GM.mp4 9eAOr_ttXp0.mkv 9F2voT6QWvQ.mkv 9HOMUW7QNFc.mkv
9IF8uTRrWAM.mkv 9mLYmkonWZQ.mkv 9QbzS8bZXFE.mkv 9Rcxr3IEX4E.mkv 9tyiDEYiWiA.mkv 9Y_l9NsnYE0.mp4 aDEYi1OG0vU.mkv
Ag-pXiLrd48.mp4 aMYcLyh9OhU.mkv AN07xQokfiE.mp4 aRbLw-dU2XY.mp4 ax3q-RkVIt4.mp4 ayAMdYfJJLk.mkv AYebXQ8eUkM.mkv
b-YoBU0XT90.mp4 B1MAUxpKaV8.mkv b50s4AlOOKY.mkv b5pRYl_djbs.mp4 bAVXp1oGjHA.mkv BCiuXAuCKAU.mp4 bePts02nIY8.mkv
bhlFavrh7WU.mkv bSZiZ4rOC7c.mkv BXCh3r-pPAM.mkv BY3sZmvUp-0.mp4 C25wkwAMB-w.mkv C3qk4yAMANk.mkv c9pEMjPT16M.webm
cc4y-yYm5Ao.mkv CG98XdYsgrA.mkv cKA-qeZuH_w.mkv cLiJgvrDlWw.mp4 CMCPhm2L400.mkv covMYDBa5dk.mp4 CrlfWnsS7ac.mkv
cWYJHb25EVs.mp4 CZ2NP8UsPuE.mkv D-BJTU6NxZ8.mkv D8Vhxbho1fY.mp4 Db19rWN5BGo.mkv dgLApPvmfBE.mkv Di1MG6auDYo.mkv
dMH8L7mqCNI.mkv E2jecoyAx1M.mkv E7JcKooKVsM.mp4 eA55_shhKko.mkv Ecivp8t3MdY.mkv Ekwy7wzLfjc.mkv er7eeiJB6dI.mkv
F3dPH6Xqf5M.mp4 fD6VkIRlIRI.mkv Feu1_8NazPE.mp4 fGgnNCbXZ20.mp4 fNcxxBjEOgw.mkv fpprSy6AzKk.mkv fZs-yXm-uUs.mp4
g1wyIcLPbq0.mp4 G4qq1MRXCiY.mkv G5Yr20A5z_Q.mkv GBXK_SyfisM.mkv Gfdg_GcaNe8.mkv gjasEUDkbuc.mkv gjdgj04FzR0.mp4
GozLjpMNADg.mkv gqmmpoO1JrY.mkv Gt61_Yekkgc.mp4 Gvp-cj3bmIY.webm hbYvDvJrpNk.mp4 hHgg9WI8dTk.mkv Hi8QeP_VPu0.mkv
HJzgJ9ZjvJk.mkv HKjR70GCRPE.mp4 Hscyg0vLKc8.mp4 HTYT2vF-j_w.mkv HV0H6oc4Kvs.mkv HVAmkvLrthQ.mkv HymKCzQJbB8.mkv
I8j6Xq2B5ys.mp4 Ie35yEssHko.mkv IKdBLciu_-A.mp4 iSlDMboCSao.mkv IuPC-z-M9u8.mkv IzvOYVMltkI.mp4 J1jDc2rTJlg.mkv
j35JnR0Q7Es.mp4 J4bt4y9ShTA.mkv j5jmjhGBW44.mkv jBs_XYHI7gM.mkv jE0S8gYWftE.webm jgAwJ0RqmYg.mp4 jI0HIlSsa3s.mkv
JNb4nWexD0I.mkv jqZpiHlJUig.mkv K_SpqDJnlps.mkv kAsz-76DTDE.mkv Kb1fduj-jdY.mp4 KHHgQ_Pe4cI.mkv KIy2a-nejxg.mp4
kLDpP9QEVBs.mp4 kMy-6RtoOVU.mkv kplbKz3_fZk.mkv Ksd1JQFHYWA.mp4 KVq6If6ozMY.mkv KWoSGtglCms.mkv l-jxh8gpxuY.mkv
l2XO3tQk8lI.mkv lDmLcWWBp1E.mkv Lg1jOu8cUBM.mkv LIavUJVrXaI.mkv LrDT25hmApw.mkv lT1zdTL-3SM.mkv lWXhqIAvarw.mkv
M6cgEs9JgDo.mkv Ma2hgTmveKQ.mkv mfsbYdLx9wE.mkv miB-wo2PfLI.mkv mkcDANJjDcM.mkv N0Dt9i9IUNg.mkv N1K2bEZLL_A.mkv
N5UD8FGzDek.mkv N7baJsMszJ0.mkv NEQ7Wpf-EtI.mkv nlinqZPgvVk.mkv NO2esmws190.mkv O_NYCUhZ9zw.mp4 o4xQ-BEa3Ss.mkv
O5m_0Yay4EU.mkv oD_wxyTHJ2I.mp4 OfMdakd4bHI.mkv OGNnUvJq9RI.mkv oifTDWZvOhY.mkv oITFHwzfw_k.mkv om_83F5VwTQ.mp4
oq_bufAhyl8.mkv Ov0za6Xb1LM.mkv oWhvucAskhk.mkv P60OxWahxBQ.mkv P90hF2S1JzA.mkv PcFEhUKhN6g.mkv pGP_oIdKmRY.mkv
phrYEKv0rmw.mkv phVLLTMzmKk.mkv pieVIsGmLsc.mkv piYxcrMxVPw.mkv plkJ45_-pMk.mp4 PmElx9ZVByw.mp4 PNZQ2UJfyQE.mp4
QaIMUi-elFo.mkv qBUu7cy-5Iw.mp4 QCLQYnt3aMo.webm QD3L10bUnBo.mkv QJzocCGLdHU.mp4 QMwT7DFA5O4.mkv QotkBTEePI8.mkv
qpoWHELxL-4.mp4 qrkff49p4E4.mp4 qsTqtWVVSLM.mkv QTmwhrVal1g.mkv qx2vAO5ofmo.mp4 r2llOyS-BmE.mkv rCb9-U4TArw.mp4
rFgb2ECMcrY.mkv ri4P2enZT9o.mkv Riu4ZKk4YdQ.webm rJKeqfTlAeY.mkv rk8Xm0EAOWs.mkv Rm518TUhbRY.mkv rUYsoIIE37A.mp4
rXFlJbXyZyc.mkv S0tkhGJjwLA.mkv sADELCyj10I.mkv SCh-ZImnyyk.mp4 SHBMiL5f_3Q.mkv skiZueh4lfY.mkv sNQJfYvhcPk.mp4
sUVhd0YTKgw.mkv T-Fc9ctuNVI.mkv t0V4drbYDnc.mkv t1LXrJOvPDg.mkv T26G6_AjJZ4.mkv TcB0IFBwk-k.mkv TCmNvNLRWrc.mkv
tEoJW9ycmSY.mkv TEQ9sAj-DPo.mp4 tghXjom3120.mkv tjqCzVjojCo.mkv TM5MPJIq1Is.mkv tNpZtigMc4g.mkv tt0t_a1EDCE.mkv
TzaVHtLXOzY.mkv U_WzY2k8IBM.mkv u1ltv6r14KQ.mkv UgZFdrNT6W0.mkv uNT6HrrnqPU.webm UOfuzrwkclM.mkv UOyyTUX5Vo4.mkv
uq_HBsvP548.mkv UrsCy6qIGoo.mkv UsLnxI_zGpY.mkv uwW0ejeosmk.mkv uzPI7FcF79U.mkv v0L-WkMO3s4.mp4 vBbjA4tWCPg.mp4
vfjywN5CN0Y.mkv Vmef_8MY46w.mkv VRlpH1MbWUw.mp4 VsYPP2I0aUQ.mkv wEAeql4z1O0.mp4 wfEOx36N4jA.mp4 WKqbLbU68wU.mkv
WlgxRNCHQzw.mkv wogRuPNBUi8.mp4 wONG7Vh87B4.mkv WSPvfxtqisg.mkv WVde9pyaHg4.mkv x-6CtPWVi6E.mkv X5wWhZ2r9kc.mp4
xeGWXqSvC-8.webm XF87VL5T0aA.mkv XglAvHaEtHY.mp4 xJmRNZVDDCY.mkv xmqSaQPzL1E.mkv xO4ABy2iOQA.mp4 xp67EC-Hvwk.mkv
XpGRS72ghag.mkv XV_FF3WC7kA.mkv y7ncweROe9U.mkv yMtGmGa8KZ0.mkv yn9WN9lsHRE.mkv yo-Kg2YxlZs.mkv yqImJuC5UzI.mp4
Ytga8ciKWJc.mkv yvgCGJ6vfkY.mkv YYWdB7h1INo.mkv z-fsLpGHq6o.mkv Z1YV6wB037M.mkv z3kgrh0L_80.mkv zC5Fh2tTS1U.mp4
zG7mx8KiavA.mp4 zlVkeKC6Ha8.mp4 ZosVdkY76FU.mkv zR725veL-DI.mkv ZxQn8HVmXsY.mkv
""".split()

#: Kinetics-400 tarball parts per split, as the mirror's k400_<split>_path.txt list them (reproduced by third-party
#: downloaders of the mirror, e.g. HF-style loaders with ``range(242)`` / ``range(20)`` and ``NUM_TEST_PARTS = 39``).
K400_PARTS = {"train": 242, "val": 20, "test": 39}

# Storage model, measured with `python benchmarks/storage.py --sections shards` (README "Disk"): H.264 inputs
# (libx264 preset medium, crf 23) of a textured moving scene, decoded by the decode stage on one core to a short side
# of 256 px at 30 fps (JPEG quality 90, restart markers). Per input size: (shard bytes per stored frame, stored
# frames per second per core, aspect ratio of the stored frame). Bytes are scaled with the stored frame's area for
# other short sides; decode time is dominated by the input's decoding and scaled with the output area only for the
# JPEG part (conservatively: all of it). Real footage has more detail than the benchmark scene: a plan, not a promise.
SHARD_COST: dict[str, tuple[float, float, float]] = {
    "340x256": (17_875, 782.0, 340 / 256),
    "640x360": (26_472, 297.0, 16 / 9),
    "1280x720": (31_464, 132.0, 16 / 9),
}


@dataclasses.dataclass(frozen=True)
class RealDataset:
    """One downloadable dataset: its manifest, what it is, and the numbers for planning disk."""

    name: str
    title: str
    manifest: str  # file name under manifests/
    pages: tuple[str, ...]
    videos: int | None  # videos the decode stage stores (annotated and present)
    stored_seconds_per_video: float  # seconds of each video the decode stage keeps
    published_bytes: int | None  # total download as published (None: not published)
    published_note: str
    layout: str
    typical_input: str = "640x360"  # the SHARD_COST row its videos resemble (an assumption, stated in the table)


def _gb(x: float) -> int:
    return int(x * 1e9)


DATASETS: dict[str, RealDataset] = {
    "kinetics400": RealDataset(
        "kinetics400", "Kinetics-400 (CVDF mirror)", "kinetics400.yaml", (CVDF_KINETICS,),
        # train 240,258 + val 19,881 + test 38,685 clips present in the tarballs (the mirror's own count, in the
        # docstring of cvdfoundation/kinetics-dataset's arrange_by_classes.py; 1,392 of them replaced)
        videos=240_258 + 19_881 + 38_685, stored_seconds_per_video=10.0,
        published_bytes=int(435 * 2**30),
        published_note="~435 GiB of tarballs, ~438 GiB extracted (third-party measurement; CVDF publishes no sizes)",
        layout="kinetics/annotations/{train,val,test}.csv, kinetics/{train,val,test}/<clip>.mp4, "
               "kinetics/replacement/replacement_for_corrupted_k400/<clip>.mp4",
        typical_input="640x360"),  # YouTube clips, mostly 16:9 at 360p and above
    "kinetics600": RealDataset(
        "kinetics600", "Kinetics-600 (CVDF mirror; annotations and tarball lists)", "kinetics600.yaml",
        (CVDF_KINETICS,), videos=None, stored_seconds_per_video=10.0, published_bytes=None,
        published_note="not published; the tarballs are listed in k600_<split>_path.txt (--from-list)",
        layout="kinetics/annotations/{train,val,test}.csv, kinetics/lists/k600_<split>_path.txt"),
    "charades": RealDataset(
        "charades", "Charades v1, 480p", "charades.yaml", (CHARADES_PAGE,),
        # 9,848 videos of ~30 s on average (Sigurdsson et al., ECCV 2016; the dataset page)
        videos=9_848, stored_seconds_per_video=30.0, published_bytes=_gb(13.0) + 3 * 10**6,
        published_note="13 GB videos + 3 MB annotations (the dataset page's link labels)",
        layout="charades/Charades/Charades_v1_{train,test}.csv, charades/Charades/Charades_v1_classes.txt, "
               "charades/Charades_v1_480/<id>.mp4",
        typical_input="640x360"),  # scaled to 480p by the publisher
    "ava": RealDataset(
        "ava", "AVA v2.2 (train+val movies of the CVDF mirror)", "ava.yaml", (CVDF_AVA, AVA_PAGE),
        # 299 movies; the decode stage keeps the keyframe windows, 902-1798 s plus half a clip each side
        videos=len(AVA_TRAINVAL_FILES), stored_seconds_per_video=900.0, published_bytes=None,
        published_note="not published (full movies, 1.5-2 h each)",
        layout="ava/ava_file_names_trainval_v2.1.txt, ava/videos/<id>.{mkv,mp4,webm}, ava/annotations/ava_*_v2.2.*",
        typical_input="1280x720"),  # feature films
}


def manifest_items(name: str) -> list[tuple[dict[str, Any], str]]:
    """The items of dataset ``name``'s manifest, each with the citation of its URL."""
    items: list[tuple[dict[str, Any], str]] = []

    def add(item_name: str, url: str, dest: str, cite: str, extract: bool = False) -> None:
        item: dict[str, Any] = {"name": item_name, "url": url, "dest": dest}
        if extract:
            item["extract"] = True
        items.append((item, cite))

    if name == "kinetics400":
        base = "https://s3.amazonaws.com/kinetics/400"
        for split, parts in K400_PARTS.items():
            for i in range(parts):
                add(f"k400-{split}-part-{i}", f"{base}/{split}/part_{i}.tar.gz",
                    f"kinetics/{split}/part_{i}.tar.gz",
                    f"listed in {base}/{split}/k400_{split}_path.txt ({CVDF_KINETICS}, k400_downloader.sh)", True)
        add("k400-replacement", f"{base}/replacement_for_corrupted_k400.tgz",
            "kinetics/replacement/replacement_for_corrupted_k400.tgz",
            f"{CVDF_KINETICS}, k400_downloader.sh and README (replacements of ~1400 corrupted videos)", True)
        for split in ("train", "val", "test"):
            add(f"k400-annotations-{split}", f"{base}/annotations/{split}.csv", f"kinetics/annotations/{split}.csv",
                f"{CVDF_KINETICS}, k400_downloader.sh")
    elif name == "kinetics600":
        base = "https://s3.amazonaws.com/kinetics/600"
        for split in ("train", "val"):
            add(f"k600-annotations-{split}", f"{base}/annotations/{split}.csv", f"kinetics/annotations/{split}.csv",
                f"{CVDF_KINETICS}, README (marked incomplete there; {split}.txt is the full list)")
            add(f"k600-annotations-{split}-txt", f"{base}/annotations/{split}.txt",
                f"kinetics/lists/k600_{split}_annotations.txt", f"{CVDF_KINETICS}, k600_downloader.sh")
        add("k600-annotations-test", f"{base}/annotations/test.csv", "kinetics/annotations/test.csv",
            f"{CVDF_KINETICS}, k600_downloader.sh")
        add("k600-annotations-holdout-test", f"{base}/annotations/kinetics600_holdout_test.csv",
            "kinetics/lists/kinetics600_holdout_test.csv", f"{CVDF_KINETICS}, k600_downloader.sh")
        for split in ("train", "val", "test"):
            add(f"k600-{split}-path-list", f"{base}/{split}/k600_{split}_path.txt",
                f"kinetics/lists/k600_{split}_path.txt", f"{CVDF_KINETICS}, k600_downloader.sh")
    elif name == "charades":
        base = "https://ai2-public-datasets.s3-us-west-2.amazonaws.com/charades"
        add("charades-annotations", f"{base}/Charades.zip", "charades/Charades.zip",
            f"{CHARADES_PAGE} (Annotations & Evaluation Code, 3 MB)", True)
        add("charades-videos-480p", f"{base}/Charades_v1_480.zip", "charades/Charades_v1_480.zip",
            f"{CHARADES_PAGE} (Data scaled to 480p, 13 GB)", True)
    elif name == "ava":
        add("ava-file-list-trainval",
            "https://s3.amazonaws.com/ava-dataset/annotations/ava_file_names_trainval_v2.1.txt",
            "ava/ava_file_names_trainval_v2.1.txt", f"{CVDF_AVA}, download.py (TRAIN_VAL_VIDEOS_LIST)")
        add("ava-v2.2-annotations", "https://research.google.com/ava/download/ava_v2.2.zip",
            "ava/annotations/ava_v2.2.zip",
            f"{AVA_PAGE} (AVA v2.2; also in PySlowFast's DATASET.md): CSVs, label map, excluded timestamps", True)
        for file_name in AVA_TRAINVAL_FILES:
            add(f"ava-movie-{file_name}", f"https://s3.amazonaws.com/ava-dataset/trainval/{file_name}",
                f"ava/videos/{file_name}", f"{CVDF_AVA}, README (url pattern trainval/[file_name])")
    else:
        raise ValueError(f"dataset {name!r}: allowed {', '.join(DATASETS)}")
    return items


def render_manifest(name: str) -> str:
    """The YAML text of ``manifests/<dataset>.yaml``: the download manifest format, one citing comment per item."""
    ds = DATASETS[name]
    lines = [
        f"# {ds.title}: the download manifest of the pipeline (README \"Real datasets\").",
        "# Generated by `slowfast datasets --write manifests` from src/slowfast/data/catalog.py; do not edit by hand.",
        f"# Published at: {', '.join(ds.pages)}. Total: {ds.published_note}.",
        "# No per-file sizes or checksums are published, so items carry none.",
        f"# Layout after extraction: {ds.layout}",
        "version: 1",
        "items:",
    ]
    for item, cite in manifest_items(name):
        lines.append(f"  # source: {cite}")
        lines.append("  - " + json.dumps(item, ensure_ascii=False))
    return "\n".join(lines) + "\n"


#: manifests of several datasets: the whole pipeline (Kinetics pretraining, then Charades and AVA) downloads all three
COMBINED = {"paper.yaml": ("kinetics400", "charades", "ava")}


def render_combined(file_name: str) -> str:
    names = COMBINED[file_name]
    lines = [
        f"# The datasets of the whole pipeline ({', '.join(DATASETS[n].title for n in names)}):",
        "# their manifests in one.",
        "# Generated by `slowfast datasets --write manifests` from src/slowfast/data/catalog.py; do not edit by hand.",
        "# No per-file sizes or checksums are published, so items carry none.",
        "version: 1",
        "items:",
    ]
    for name in names:
        for item, cite in manifest_items(name):
            lines.append(f"  # source: {cite}")
            lines.append("  - " + json.dumps(item, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def rendered_manifests() -> dict[str, str]:
    """``{file name: YAML text}`` of every shipped manifest."""
    out = {ds.manifest: render_manifest(name) for name, ds in DATASETS.items()}
    out.update({file_name: render_combined(file_name) for file_name in COMBINED})
    return out


def write_manifests(out_dir: Path) -> list[Path]:
    from slowfast.utils.io import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, text in rendered_manifests().items():
        write_text_atomic(out_dir / file_name, text)
        paths.append(out_dir / file_name)
    return paths


#: what a URL path may hold as it is (RFC 3986 ``pchar`` and ``/``); ``%`` stays, so a line already encoded is kept
_URL_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def _encoded(url: str) -> str:
    """``url`` with its path percent-encoded. The K600 lists name per-class archives with raw spaces
    (``.../train/pull ups.tar.gz``, pytorch/vision#5564), which an HTTP client refuses to send."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=quote(parts.path, safe=_URL_PATH_SAFE)))


def manifest_from_list(urls: list[str], dest_prefix: str, *, extract: bool = True) -> dict[str, Any]:
    """A manifest of the URLs of a published list (one URL per line, e.g. CVDF's ``k600_train_path.txt``): each
    file goes to ``<dest_prefix>/<its decoded file name>``, fetched from its URL with the path percent-encoded."""
    items = []
    for line in urls:
        url = _encoded(line)
        file_name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not file_name or "/" in file_name or file_name in (".", ".."):
            raise ValueError(f"list entry {line!r}: no file name")
        items.append({"name": f"{dest_prefix.strip('/')}/{file_name}", "url": url,
                      "dest": f"{dest_prefix.strip('/')}/{file_name}", "extract": extract})
    return {"version": 1, "items": items}


def storage_estimate(ds: RealDataset, short_side: int, *, fps: float = 30.0, keep_every: int = 1
                     ) -> dict[str, float | None]:
    """Expected stored frames, shard bytes and single-core decode hours of ``ds`` at ``short_side`` (see
    :data:`SHARD_COST`); ``keep_every`` = 2 stores every second frame (``decode.frames.keep_every``)."""
    if ds.videos is None:
        return {"frames": None, "shard_bytes": None, "decode_core_hours": None}
    bytes_256, frames_per_s, _ = SHARD_COST[ds.typical_input]
    frames = ds.videos * ds.stored_seconds_per_video * fps / keep_every
    area = (short_side / 256) ** 2
    return {"frames": frames, "shard_bytes": frames * bytes_256 * area,
            "decode_core_hours": frames / (frames_per_s / max(area, 1.0)) / 3600}


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def summary(manifest_dir: Path, short_side: int, *, fps: float = 30.0, keep_every: int = 1) -> list[dict[str, Any]]:
    """One row per shipped dataset: manifest, files, download size, expected shards and decode time."""
    from slowfast.data.download import load_manifest

    rows = []
    for name, ds in DATASETS.items():
        path = manifest_dir / ds.manifest
        manifest = load_manifest(path) if path.is_file() else None
        est = storage_estimate(ds, short_side, fps=fps, keep_every=keep_every)
        rows.append({
            "dataset": name, "manifest": str(path), "present": manifest is not None,
            "files": len(manifest.items) if manifest else None,
            "archives": sum(i.extract for i in manifest.items) if manifest else None,
            "download_bytes": ds.published_bytes, "download_note": ds.published_note,
            "videos": ds.videos, "typical_input": ds.typical_input, "short_side": short_side, **est,
        })
    return rows


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifests", type=Path, default=Path("manifests"), help="folder of the shipped manifests")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="short side and frame rate from decode.frames of this file (when it exists)")
    parser.add_argument("--short-side", type=int, default=None, help="override decode.frames.short_side")
    parser.add_argument("--write", type=Path, default=None, metavar="DIR", help="(re)generate the manifests in DIR")
    parser.add_argument("--from-list", type=Path, action="append", default=None, metavar="LIST",
                        help="print a manifest of the URLs in LIST (one per line), e.g. k600_train_path.txt; "
                             "repeat it, each with its --dest-prefix, for one manifest of several lists")
    parser.add_argument("--dest-prefix", action="append", default=None,
                        help="with --from-list, one per list in the same order: dest folder, e.g. kinetics/train")
    parser.add_argument("--include", type=Path, action="append", default=[], metavar="MANIFEST",
                        help="with --from-list: the items of MANIFEST first (e.g. manifests/kinetics600.yaml), "
                             "so that one manifest fetches the whole dataset")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if args.write is not None:
        for path in write_manifests(args.write):
            print(path)
        return 0
    if args.from_list is not None:
        prefixes = args.dest_prefix or []
        if len(prefixes) != len(args.from_list):
            raise ValueError(f"--from-list given {len(args.from_list)} times but --dest-prefix {len(prefixes)}: "
                             "each list needs its dest folder (e.g. --dest-prefix kinetics/train)")
        from slowfast.data.download import Manifest, ManifestItem, load_manifest

        # included manifests are read as the download stage reads them (validated, relative URLs resolved)
        items = [{k: v for k, v in dataclasses.asdict(item).items() if v not in (None, False)}
                 for path in args.include for item in load_manifest(path).items]
        for listing, prefix in zip(args.from_list, prefixes):
            urls = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
            items += manifest_from_list(urls, prefix)["items"]
        Manifest(1, tuple(ManifestItem(**item) for item in items))  # a clash of names or dests fails here, not later
        print(yaml.safe_dump({"version": 1, "items": items}, sort_keys=False), end="")
        return 0
    short_side, fps, keep_every = 256, 30.0, 1
    if args.params.is_file():
        from slowfast.params import load_params

        frames = load_params(args.params).decode.frames
        short_side, fps = frames.short_side, frames.fps
        keep_every = getattr(frames, "keep_every", 1)
    if args.short_side is not None:
        short_side = args.short_side
    rows = summary(args.manifests, short_side, fps=fps, keep_every=keep_every)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"shards at short side {short_side} px, {fps:g} fps" + (f", every {keep_every}nd frame" if keep_every > 1
          else "") + "; per stored frame at 256 px (benchmarks/storage.py, H.264 input -> KB, frames/s per core): "
          + ", ".join(f"{k} {b / 1000:.1f} KB {f:.0f}/s" for k, (b, f, _) in SHARD_COST.items()))
    header = (f"{'dataset':<12} {'files':>6} {'download':>10} {'videos':>8} {'input':>9} {'shards':>9} {'decode':>13}"
              "  manifest")
    print(header)
    for r in rows:
        hours = r["decode_core_hours"]
        decode = "-" if hours is None else f"{hours:,.0f} core-h"
        files = "-" if r["files"] is None else str(r["files"])
        videos = "-" if r["videos"] is None else f"{r['videos']:,}"
        print(f"{r['dataset']:<12} {files:>6} {_human(r['download_bytes']):>10} {videos:>8} {r['typical_input']:>9} "
              f"{_human(r['shard_bytes']):>9} {decode:>13}  {r['manifest']}{'' if r['present'] else ' (missing)'}")
    print("download sizes: " + "; ".join(f"{r['dataset']}: {r['download_note']}" for r in rows))
    return 0
