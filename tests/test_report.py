"""The HTML report (--report FILE.html) of a real run: self-contained, complete, and rendered by headless Chromium."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from fer_batch.batch import run_batch
from fer_batch.config import AnalyzeConfig, RunConfig
from fer_batch.errors import UsageError
from fer_batch.labels import EMOTIONS
from fer_batch.summary import read_timeline

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Checker(HTMLParser):
    """Every element closed in order; collects the resources the page would load."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.resources: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.resources += [v for k, v in attrs if k in ("src", "href") and v]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, face_video, multi_face_photo, no_face_photo):
    from fer_batch.classify import Classifier

    tmp = tmp_path_factory.mktemp("report")
    media = tmp / "media"
    (media / "clips").mkdir(parents=True)
    shutil.copy(face_video.path, media / "clips" / "face & <video>.mp4")
    shutil.copy(multi_face_photo, media / "group.jpg")
    shutil.copy(no_face_photo, media / "empty_room.jpg")
    (media / "broken.jpg").write_bytes(b"")
    config = RunConfig(paths=(str(media),), out=tmp / "r.csv", report=tmp / "out" / "report.html",
                       summary=tmp / "s.csv", analyze=AnalyzeConfig(every=2))
    report = run_batch(config, classifier=Classifier())
    return config, report


def test_report_is_self_contained_valid_and_complete(report_run):
    config, report = report_run
    text = config.report.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert "script" not in checker.tags and "link" not in checker.tags and "iframe" not in checker.tags
    assert checker.resources and all(r.startswith("data:image/jpeg;base64,") for r in checker.resources)
    assert not re.search(r"https?://", text)  # nothing the page could fetch
    assert html.escape(report.line()) in text
    # Every source with rows, in the timeline's order, and every failure with its reason.
    timeline = read_timeline(config.out)
    names = list(dict.fromkeys(timeline["source"]))
    at = [text.index(f'<span class="name">{html.escape(n)}</span>') for n in names]
    assert at == sorted(at) and len(names) == 3
    failure = next(e for e in report.errors)
    assert failure.source.endswith("broken.jpg")
    assert f"<td>{html.escape(failure.source)}</td><td>{html.escape(failure.error)}</td>" in text
    # Thumbnails: a crop and a frame per tracked face of the video and per face of the group photo.
    assert len(checker.resources) >= 2 * (3 + 1)
    # A photo's face card gives the classifier's probabilities (a share of its one frame would say 100%); a video
    # face's gives the share of its frames each emotion topped, and its mean probabilities.
    group = timeline[timeline["source"].str.endswith("group.jpg")]
    assert len(group) == 3
    for _, row in group.iterrows():
        top = sorted(((row[e], e) for e in EMOTIONS if row[e] >= 0.05), reverse=True)
        assert html.escape("probabilities: " + ", ".join(f"{e} {100 * p:.0f}%" for p, e in top)) in text
    video = timeline[timeline["source"].str.endswith(".mp4")].dropna(subset=["face_id"])
    longest = video.groupby("face_id").size().max()
    assert f"top emotion in {longest} frames: " in text and "mean probabilities: " in text


def test_report_must_be_html(tmp_path, one_face_photo):
    with pytest.raises(UsageError, match="--report must name an .html file"):
        RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv", report=tmp_path / "r.pdf")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is absent (Debian: apt-get install chromium; "
                                                "CI's .ci/run installs it)")
def test_report_renders_in_chromium_without_sideways_scrolling(report_run, tmp_path):
    config, _ = report_run
    # A copy with a probe that writes the page's laid-out width into the DOM once everything has loaded.
    probe = tmp_path / "probe.html"
    probe.write_text(config.report.read_text(encoding="utf-8").replace(
        "</body>", "<script>addEventListener('load',()=>{document.body.dataset.width="
                   "document.documentElement.scrollWidth;document.body.dataset.images="
                   "[...document.images].filter(i=>i.complete&&i.naturalWidth>0).length})</script></body>"),
        encoding="utf-8")
    common = [_chromium(), *CHROMIUM_FLAGS, "--window-size=1280,2000", "--virtual-time-budget=5000"]
    res = subprocess.run([*common, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180)
    found = re.search(r'data-width="(\d+)" data-images="(\d+)"', res.stdout)
    assert found, res.stderr[-2000:]
    width, images = int(found.group(1)), int(found.group(2))
    assert width <= 1280  # no sideways scrolling at 1280 px
    assert images == config.report.read_text(encoding="utf-8").count("<img ")  # every thumbnail decodes
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}",
                    config.report.as_uri()], capture_output=True, timeout=180)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 100  # a page with charts and photos, not a blank or error page


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is absent (Debian: apt-get install chromium; "
                                                "CI's .ci/run installs it)")
def test_settings_labels_stay_on_one_line_beside_long_inputs_and_failures(tmp_path):
    """35 inputs named on the command line and a failure with a 180-character path: the settings' labels were
    broken a letter or three a line ("tim/elin/e") and the failure's reason squeezed to a word a line."""
    from fer_batch.report import build_report
    from fer_batch.timeline import read_timeline

    empty = tmp_path / "empty.csv"
    empty.write_text("source,media,frame,time_s,face_id,x,y,w,h,confidence,emotion," + ",".join(EMOTIONS) + "\n")
    inputs = [f"many/p{i:02d}.jpg" for i in range(35)]
    long_path = "fail/" + "x" * 120 + "/" + "y" * 60 + ".jpg"
    page = build_report(read_timeline(empty), [(long_path, "not a readable image (unknown or corrupt format)")],
                        settings={"inputs": inputs, "timeline": "../r10/results.csv", "analysed": "every 15th frame",
                                  "runtime": "tflite (chosen by auto)", "detect size": 640},
                        line="sources: 35 succeeded, 1 failed", paths={})
    probe = tmp_path / "probe.html"
    # Lines of a cell's text: a Range over it has one client rect per line box.
    probe.write_text(page.replace("</body>", (
        "<script>addEventListener('load',()=>{const lines=c=>{const r=document.createRange();r.selectNodeContents(c);"
        "return r.getClientRects().length};const b=document.body.dataset;"
        "b.thlines=[...document.querySelectorAll('th')].map(lines).join(' ');"
        "const f=document.querySelector('table.fail');b.reason=Math.round(100*f.rows[1].cells[1].offsetWidth/"
        "f.offsetWidth);b.width=document.documentElement.scrollWidth})</script></body>")), encoding="utf-8")
    res = subprocess.run([_chromium(), *CHROMIUM_FLAGS, "--window-size=1280,2000", "--virtual-time-budget=5000",
                          f"--user-data-dir={tmp_path / 'p'}", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180)
    found = re.search(r'data-thlines="([\d ]+)" data-reason="(\d+)" data-width="(\d+)"', res.stdout)
    assert found, res.stderr[-2000:]
    assert set(found.group(1).split()) == {"1"}, found.group(1)  # every label on one line
    assert int(found.group(2)) >= 40 and int(found.group(3)) <= 1280


def test_cli_writes_annotated_copies_and_the_report(tmp_path, one_face_photo, capsys):
    from fer_batch.cli import EXIT_OK, main

    out, ann, rep = tmp_path / "r.csv", tmp_path / "ann", tmp_path / "rep" / "r.html"
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--annotate", str(ann), "--report", str(rep),
                 "--quiet"]) == EXIT_OK
    err = capsys.readouterr().err
    assert f"annotate: {ann}" in err and f"report:   {rep}" in err
    assert rep.exists() and len(list(ann.rglob("*.jpg"))) == 1


def test_the_report_says_what_runtime_auto_chose(tmp_path, one_face_photo):
    """A report records what ran the network, not only the option: `auto` is one runtime on one machine and another
    where TensorFlow sees a GPU, and the probabilities differ between them."""
    from fer_batch.classify import Classifier

    config = RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv", report=tmp_path / "r.html")
    run_batch(config)  # the classifier loaded by the run itself
    ran = Classifier()
    expected = ran.runtime + (f", {ran.quantization}" if ran.runtime == "tflite" and ran.quantization else "")
    text = config.report.read_text(encoding="utf-8")
    assert f"<tr><th>runtime</th><td>{html.escape(expected)} (chosen by auto)</td></tr>" in text
    config = RunConfig(paths=(str(one_face_photo),), out=tmp_path / "k.csv", report=tmp_path / "k.html",
                       analyze=AnalyzeConfig(runtime="keras"))
    run_batch(config)
    assert "<tr><th>runtime</th><td>keras</td></tr>" in config.report.read_text(encoding="utf-8")


@pytest.mark.parametrize("turns", [1, 3])
def test_thumbnails_of_a_video_stored_sideways_show_it_upright(tmp_path, face_video, turns):
    """The report's thumbnails come from the frames the boxes were measured in: a phone video's upright frames,
    not its sideways stored pixels (where the box would cut the wrong place)."""
    import cv2
    import numpy as np
    import synthetic_media as synthetic

    from fer_batch.thumbs import face_thumbnails

    if not synthetic.h264_available():
        pytest.skip("needs PyAV's H.264 encoder")
    upright = synthetic.write_rotated_copy(face_video.path, tmp_path / "upright.mp4", 0)
    sideways = synthetic.write_rotated_copy(face_video.path, tmp_path / "sideways.mp4", turns)
    frame = face_video.frames // 2
    height, width = face_video.size[1], face_video.size[0]
    box = (width // 4, height // 4, width // 2, height // 2)
    wanted, colours = {1: (frame, box, "happy")}, {"happy": (0, 200, 255)}
    got = {clip: face_thumbnails(clip, "video", wanted, colours)[1] for clip in (upright, sideways)}
    decoded = {clip: [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
                      for jpeg in pair] for clip, pair in got.items()}
    for a, b in zip(decoded[upright], decoded[sideways]):  # the crop, then the frame with its box
        assert a.shape == b.shape
        assert np.abs(a - b).mean() < 12  # the same pixels, to the codec's noise


def test_a_thumbnail_far_into_a_video_of_variable_rate_is_of_its_own_frame(tmp_path):
    """OpenCV seeks to a frame number through its time at the average rate: in a video of 40 ms then 10 ms frames,
    the thumbnail of frame 350 came from frame 343 (an empty crop, a box beside the face). A seek is checked by the
    frame's time in the timeline, and the video decoded up to the frame where it misses."""
    from fractions import Fraction

    import av
    import cv2
    import numpy as np

    from fer_batch.sources import Source, iter_frames
    from fer_batch.thumbs import face_thumbnails

    def level(i):  # each frame a flat grey of its own, five levels from its neighbours
        return 20 + (i * 5) % 200

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(420):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level(i), np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 40 if i < 300 else 10
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    times = {f.index: f.time_s for f in iter_frames(Source(path, "vfr.mp4", "video"), bgr=True)}
    box, colours = (16, 12, 32, 24), {"happy": (0, 200, 255)}
    for target in (350, 410):
        for wanted in ((target, box, "happy", times[target]), (target, box, "happy")):  # with and without a time
            crop = face_thumbnails(path, "video", {1: wanted}, colours)[1][0]
            grey = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_GRAYSCALE).mean()
            assert abs(grey - level(target)) < 2.5, (target, len(wanted), grey, level(target))


@pytest.mark.parametrize("face_x", [40, 3000, 5900])
def test_a_panoramas_frame_thumbnail_is_cut_around_its_face_to_fit_the_card(tmp_path, face_x):
    """A 6000x400 photo's frame thumbnail was 1,440 px wide: a scrollbar, the card's figures off screen."""
    import cv2
    import numpy as np

    from fer_batch.thumbs import FRAME_H, FRAME_W_MAX, face_thumbnails

    wide = np.full((400, 6000, 3), 40, np.uint8)
    wide[150:250, face_x:face_x + 100] = 230  # the "face": a bright square where its box is
    cv2.imwrite(str(tmp_path / "pano.png"), wide)
    colour = (0, 0, 255)
    frame = face_thumbnails(tmp_path / "pano.png", "image", {0: (0, (face_x, 150, 100, 100), "happy")},
                            {"happy": colour})[0][1]
    small = cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert small.shape[:2] == (FRAME_H, FRAME_W_MAX)
    bright = np.flatnonzero((small[:, :, 1] > 150).any(axis=0))  # the square's columns (green: not the red box)
    assert len(bright) >= 22  # the whole square (100 px at 96/400) is in the window


def test_smooth_smooths_the_reports_timelines_as_the_charts(report_run):
    """--smooth: a video's bands are drawn from the smoothed probabilities (what its PNG chart shows), and say so."""
    from fer_batch.report import build_report, timeline_svg
    from fer_batch.summary import face_times, smooth_probabilities, tracked_faces

    config, report = report_run
    timeline = read_timeline(config.out)
    video = timeline[timeline["media"] == "video"]
    ids, _ = tracked_faces(video)
    assert ids
    smoothed = video.copy()
    for fid in ids:
        rows = smoothed[smoothed["face_id"] == fid].sort_values("frame")
        probs = rows[list(EMOTIONS)].to_numpy(dtype=float)
        smoothed.loc[rows.index, list(EMOTIONS)] = smooth_probabilities(face_times(rows), probs, 1.0)
    drawn = timeline_svg(video, ids, smooth=1.0)
    assert drawn == timeline_svg(smoothed, ids) != timeline_svg(video, ids)
    page = build_report(timeline, [], settings={}, line=report.line(), paths={}, smooth=1.0)
    assert drawn in page and "probabilities smoothed over 1 s" in page


def test_a_report_added_by_resuming_a_finished_run_heads_the_whole_output(report_run, tmp_path):
    """Resuming a finished run is how a report is added afterwards: its headline counts the whole output, not the
    nothing this run did."""
    import dataclasses

    config, first = report_run
    again = dataclasses.replace(config, resume=True, report=tmp_path / "again.html", summary=None)
    report = run_batch(again)
    assert report.succeeded == 0 and report.skipped == first.succeeded + first.failed
    rows = len(read_timeline(config.out))
    text = again.report.read_text(encoding="utf-8")
    assert html.escape(f"the whole output: 3 sources with results, 1 failure, {rows} rows · this run (--resume): "
                       f"{report.line()}") in text


def test_a_stop_while_the_report_is_written_ends_the_run_as_interrupted(report_run, tmp_path):
    """Ctrl-C after the last file used to be ignored until every output was written (minutes, for an archive's
    report): the run stops at the next source, as an interruption, with the timeline complete."""
    import dataclasses
    import threading

    from fer_batch.errors import Interrupted

    config, first = report_run
    stop = threading.Event()
    told = []

    class Stopper:
        def writing(self, option):
            told.append(option)
            if option == "--report":
                stop.set()  # as the CLI's Ctrl-C handler does

    again = dataclasses.replace(config, resume=True, report=tmp_path / "late.html", summary=tmp_path / "s.csv")
    with pytest.raises(Interrupted, match="stopped while writing --report; the timeline is complete") as info:
        run_batch(again, progress=Stopper(), stop=stop)
    assert told == ["--summary", "--report"] and info.value.report is not None
    assert (tmp_path / "s.csv").is_file() and not (tmp_path / "late.html").exists()


def test_thumbnails_stop_after_the_reports_budget_and_the_cards_stay(report_run):
    """An archive's report keeps its thumbnails to its first faces (a page a browser still opens); every face keeps
    its card, and each section past the budget says why its pictures are missing."""
    from pathlib import Path

    from fer_batch.report import build_report

    config, report = report_run
    timeline = read_timeline(config.out)
    paths = {s: Path(s) for s in timeline["source"].unique()}
    kwargs = dict(settings={}, line=report.line(), paths=paths)
    full = build_report(timeline, [], **kwargs)
    cards = full.count('<div class="face">')
    pictures = full.count("data:image/jpeg;base64,")
    assert cards >= 4 and pictures == 2 * cards and "a report holds those of its first" not in full
    two = build_report(timeline, [], thumbnails=2, **kwargs)
    assert two.count('<div class="face">') == cards and two.count("data:image/jpeg;base64,") == 2 * 2
    assert "a report holds those of its first 2 faces, to stay small enough to open" in two
    assert ("Thumbnails for no face here" in two) or ("Thumbnails for the first" in two)
    none = build_report(timeline, [], thumbnails=0, **kwargs)
    assert none.count('<div class="face">') == cards and "data:image/jpeg;base64," not in none
    assert none.count("Thumbnails for no face here") == 2  # the video's section and the group photo's
    with pytest.raises(UsageError, match="thumbnails must be 0 or more"):
        build_report(timeline, [], thumbnails=-1, **kwargs)
