from fer_batch.wording import count, shortened


def test_count_says_one_noun_and_many_nouns_with_thousands_grouped():
    assert count(1, "frame") == "1 frame"
    assert count(0, "face detection") == "0 face detections"
    assert count(2000, "analysed frame") == "2,000 analysed frames"
    assert count("?", "epoch") == "? epochs"  # a card without the figure
    assert count(2000, "row", grouped=False) == "2000 rows"  # the last line of a run, which scripts parse
    assert count(1, "copy", plural="copies") == "1 copy" and count(3, "copy", plural="copies") == "3 copies"


def test_shortened_keeps_a_long_names_end_within_the_width():
    name = "archive/2026/" + "x" * 50 + "/clip 7.mp4"
    assert shortened(name, 40) == "…" + name[-39:] and len(shortened(name, 40)) == 40
    assert shortened(name, len(name)) == name
    assert shortened(name, len(name) - 1) == "…" + name[2:]


def test_shortened_can_keep_a_long_names_start_too():
    name = "archive-2026/interviews/" + "session-" * 20 + "clip.mp4"
    cut = shortened(name, 60, head=20)
    assert len(cut) == 60 and cut.startswith(name[:20] + "…") and cut.endswith("clip.mp4")
    assert cut == name[:20] + "…" + name[-39:]
    assert shortened("short.mp4", 60, head=20) == "short.mp4"
