"""FER-2013 CSV and image-folder loaders: malformed rows, identical arrays either way, splits."""

import gzip

import numpy as np
import pytest
from PIL import Image

from fer_batch.errors import DatasetError
from fer_batch.labels import EMOTIONS
from fer_batch.training.datasets import load_csv, load_dataset, load_folder, read_face_image, stratified_split
from synthetic_faces import make_faces, pixels_text, write_csv, write_folder


def _sorted(split):
    """A split's faces and labels in a canonical order, to compare two loaders that read in different orders."""
    keys = [(int(y), x.tobytes()) for x, y in zip(split.x, split.y)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return split.x[order], split.y[order]


def test_csv_reads_faces_labels_and_usage(tmp_path):
    x, y = make_faces(2)
    usage = ["Training"] * 7 + ["PublicTest"] * 4 + ["PrivateTest"] * 3
    ds = load_csv(write_csv(tmp_path / "f.csv", x, y, usage))
    assert ds.split_method == "usage" and ds.problems == []
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 7, "val": 4, "test": 3}
    assert ds["train"].x.dtype == np.uint8 and ds["train"].x.shape == (7, 48, 48, 1)
    np.testing.assert_array_equal(ds["train"].x[..., 0], x[:7])
    np.testing.assert_array_equal(ds["val"].y, y[7:11])
    np.testing.assert_array_equal(ds["test"].x[..., 0], x[11:])


def test_malformed_rows_are_skipped_and_reported_with_line_numbers(tmp_path):
    x, y = make_faces(1)
    good = pixels_text(x[0])
    rows = [
        "emotion,pixels,Usage",                       # line 1
        f"0,{good},Training",                          # 2 ok
        f"1,{' '.join(['7'] * 2000)},Training",        # 3 wrong pixel count
        f"2,ab {' '.join(good.split()[1:])},Training",  # 4 non-numeric pixel
        f"7,{good},Training",                          # 5 label outside 0-6
        "3",                                           # 6 missing columns
        f"x,{good},Training",                          # 7 label not an integer
        f"4,{good},Sometimes",                         # 8 unknown Usage
        f"5,{' '.join(['300'] + good.split()[1:])},PublicTest",  # 9 value above 255
        "",                                            # 10 blank: ignored silently
        f"6,{good},PublicTest",                        # 11 ok
        f"Happiness,{good},PublicTest",                # 12 ok: a name or alias, as class folders take them
        f"hapy,{good},PublicTest",                     # 13 neither
        f"4.0,{good},PublicTest",                      # 14 ok: a label column that went through floats
        f"2.5,{good},PublicTest",                      # 15 not a whole number
    ]
    path = tmp_path / "messy.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = load_csv(path)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 1, "val": 3}
    assert ds["val"].y.tolist() == [6, 3, 4]
    problems = "\n".join(ds.problems)
    assert len(ds.problems) == 9, problems
    expected = {
        3: "expected 2304 pixel values, got 2000",
        4: "non-numeric pixel value",
        5: "label 7 outside 0-6",
        6: "expected 3 columns, got 1",
        7: "label 'x' is neither 0-6 nor an emotion name (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, "
           "6 neutral)",
        8: "unknown Usage 'Sometimes'",
        9: "0..255",
        13: "label 'hapy' is neither 0-6 nor an emotion name (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, "
            "6 neutral) (did you mean 'happy'?)",
        15: "label '2.5' is not a whole number (0-6)",
    }
    for problem, (line, message) in zip(ds.problems, expected.items()):
        assert problem.startswith(f"{path}:{line}: "), problem
        assert message in problem, problem


def test_a_wrong_pixel_count_or_usage_says_what_it_may_be(tmp_path):
    """"expected 2304 pixel values, got 1" for commas between the values, "got 6912" for a colour face, and an unknown
    Usage without the values taken: messages that did not say what to change."""
    x, y = make_faces(1)
    good = pixels_text(x[0])
    rows = ["emotion,pixels,Usage", f'0,"{good.replace(" ", ",")}",Training', f"1,{' '.join([good] * 3)},Training",
            f"2,{' '.join(['7'] * 64 * 64)},Training", f"3,{good},Testing", f"4,{good},Training"]
    path = tmp_path / "odd.csv"
    path.write_text("\n".join(rows) + "\n")
    problems = load_csv(path).problems
    assert len(problems) == 4, problems
    assert "got 1 (the values seem separated by commas or semicolons; FER-2013 separates them by spaces)" in problems[0]
    assert "got 6912 (6912 = 3 x 2304: a colour face? the pixels must be one grayscale value each)" in problems[1]
    assert "got 4096 (a 64x64 face? the pixels must be a 48x48 one)" in problems[2]
    assert "unknown Usage 'Testing' (FER-2013's are Training, PublicTest and PrivateTest; also taken: privatetest, " \
           "publictest, test, train, training, val, valid, validation)" in problems[3]


def test_a_photo_or_video_given_as_the_data_is_named_as_such(tmp_path):
    """A PNG read as a CSV failed on its first byte: "'utf-8' codec can't decode byte 0x89"."""
    x, _ = make_faces(1)
    Image.fromarray(x[0]).save(tmp_path / "face48.png")
    (tmp_path / "clip.MP4").write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError, match=r"--data '.*face48.png' is an image; --data takes a FER-2013 CSV "
                                           r"\(emotion,pixels\[,Usage\]; plain or .gz\) or a folder of class folders"):
        load_dataset(tmp_path / "face48.png")
    with pytest.raises(DatasetError, match=r"clip.MP4' is a video; --data takes"):
        load_dataset(tmp_path / "clip.MP4")


def test_no_usable_rows_names_the_file_and_shows_problems(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("emotion,pixels\n9,1 2 3\nfoo,bar\n")
    with pytest.raises(DatasetError) as err:
        load_csv(path)
    text = str(err.value)
    assert str(path) in text and "no usable rows" in text
    assert f"{path}:2:" in text and f"{path}:3:" in text


def test_a_csv_with_semicolons_is_told_so(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("emotion;pixels;Usage\n3;1 2 3;Training\n")
    with pytest.raises(DatasetError, match="its columns seem separated by ';'; the CSV must use commas"):
        load_csv(path)


@pytest.mark.parametrize("content, reason", [
    ("", "the file is empty"),
    ("emotion,Usage\n3,Training\n", "expected a header with columns 'emotion,pixels[,Usage]', got 'emotion,usage'"),
    ("a,b,c\n1,2,3\n", "expected a header with columns 'emotion,pixels[,Usage]', got 'a,b,c'"),
])
def test_missing_columns_or_empty_file(tmp_path, content, reason):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DatasetError) as raised:
        load_csv(path)
    assert str(raised.value) == f"{path}: {reason}"


def test_a_damaged_gzip_is_a_dataset_error_naming_the_file(tmp_path):
    """Bytes damaged inside the deflate stream raise zlib.error, which is no OSError: still a DatasetError (exit 4),
    not a crash."""
    x, y = make_faces(10)
    text = write_csv(tmp_path / "plain.csv", x, y).read_bytes()
    gz = tmp_path / "f.csv.gz"
    packed = bytearray(gzip.compress(text))
    packed[10:18] = b"\xff" * 8  # the first deflate block's header, right after gzip's own 10 bytes
    gz.write_bytes(bytes(packed))
    with pytest.raises(DatasetError, match=f"{gz}: cannot read as a FER-2013 CSV"):
        load_csv(gz, holdout=False)


def test_a_stray_quote_is_reported_with_the_lines_it_took(tmp_path):
    """A quote opening a field swallowed every line up to the next quote into one row: those rows vanished
    unreported, line numbers after it were off, and in a file of FER-2013's size the whole file was refused
    ("field larger than field limit") without a line number."""
    x, y = make_faces(1)
    rows = [f"{label},{pixels_text(face)},Training" for face, label in zip(x, y)]
    rows[2] = rows[2].replace(",", ',"', 1)  # line 4: a quote opening the pixels, closed by none
    rows[5] = rows[5].replace(",", ',"', 1)  # line 7: another, which closes the first
    rows[6] = "9," + rows[6].split(",", 1)[1]  # line 8: a label out of range
    path = tmp_path / "quoted.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    ds = load_csv(path)
    assert ds.problems == [f'{path}:4-7: a quote (") joins these lines into one row; skipped, with the rows on them',
                           f"{path}:8: label 9 outside 0-6"]
    assert len(ds["train"]) == len(rows) - 5
    clean = [f"{label},{pixels_text(face)},Training" for face, label in zip(x, y)]
    many = clean[:3] + [clean[3].replace(",", ',"', 1)] + clean[4:] * 30  # line 5 opens a quote nothing closes
    path.write_text("emotion,pixels,Usage\n" + "\n".join(many) + "\n")
    ds = load_csv(path)
    assert len(ds.problems) == 1 and ds.problems[0].startswith(f"{path}:5: field larger than field limit")
    assert ds.problems[0].endswith('a quote (") opened in this row is never closed; this row and the rest of the '
                                   "file were not read") and len(ds["train"]) == 3


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_an_archive_is_told_to_be_extracted(tmp_path, kind):
    """Kaggle ships FER-2013 as fer2013.tar.gz: "expected a header ..., got '././@paxheader'" said nothing useful."""
    import tarfile
    import zipfile

    x, y = make_faces(1)
    plain = write_csv(tmp_path / "fer2013.csv", x, y)
    if kind == "zip":
        archive = tmp_path / "fer2013.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.write(plain, "fer2013.csv")
    else:
        archive = tmp_path / "fer2013.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            t.add(plain, "fer2013/fer2013.csv")
    with pytest.raises(DatasetError, match=f"{archive}: this is a {kind} archive, not a CSV: extract fer2013.csv"):
        load_csv(archive)


def test_a_csv_through_a_pipe_is_read_whole(tmp_path):
    """--data <(zcat fer2013.csv.gz): the gzip sniff read the pipe's first bytes, then opened it again without them."""
    import os
    import subprocess

    x, y = make_faces(1)
    plain = write_csv(tmp_path / "f.csv", x, y)
    for name in ("f.csv", "f.csv.gz"):
        if name.endswith(".gz"):
            (tmp_path / name).write_bytes(gzip.compress(plain.read_bytes()))
        read_end, write_end = os.pipe()
        cat = subprocess.Popen(["cat", tmp_path / name], stdout=write_end)
        os.close(write_end)
        try:
            ds = load_csv(f"/dev/fd/{read_end}", holdout=False)
        finally:
            os.close(read_end)
            cat.wait()
        np.testing.assert_array_equal(ds["all"].y, y)


def test_gzip_and_bom_and_spaced_header(tmp_path):
    x, y = make_faces(1)
    plain = write_csv(tmp_path / "plain.csv", x, y)
    text = plain.read_text().replace("emotion,pixels", "\ufeffemotion, pixels", 1)
    gz = tmp_path / "f.csv.gz"
    with gzip.open(gz, "wt") as f:
        f.write(text)
    a, b = load_csv(plain, holdout=False), load_csv(gz, holdout=False)
    np.testing.assert_array_equal(a["all"].x, b["all"].x)
    np.testing.assert_array_equal(a["all"].y, y)


def test_csv_and_folder_give_identical_arrays(tmp_path):
    x, y = make_faces(4, seed=3)
    splits = (["train", "val", "test"] * 10)[: len(y)]
    usage = [{"train": "Training", "val": "PublicTest", "test": "PrivateTest"}[s] for s in splits]
    from_csv = load_dataset(write_csv(tmp_path / "f.csv", x, y, usage))
    from_folder = load_dataset(write_folder(tmp_path / "tree", x, y, splits))
    assert from_folder.split_method == "folders" and from_folder.problems == []
    assert set(from_csv.splits) == set(from_folder.splits) == {"train", "val", "test"}
    for name in from_csv.splits:
        cx, cy = _sorted(from_csv[name])
        fx, fy = _sorted(from_folder[name])
        assert cx.dtype == fx.dtype == np.uint8 and cx.shape == fx.shape
        np.testing.assert_array_equal(cx, fx)
        np.testing.assert_array_equal(cy, fy)


def test_folder_aliases_and_split_folder_names(tmp_path):
    aliases = {0: "anger", 1: "Disgusted", 2: "fearful", 3: "happiness", 4: "sadness", 5: "surprised", 6: "neutral"}
    x, y = make_faces(1)
    write_folder(tmp_path / "t", x, y, ["Training"] * 7, names=aliases)
    ds = load_folder(tmp_path / "t", holdout=False)
    assert set(ds.splits) == {"train"}
    fx, fy = _sorted(ds["train"])
    ex, ey = _sorted(type(ds["train"])(x[..., None], y))
    np.testing.assert_array_equal(fy, ey)
    np.testing.assert_array_equal(fx, ex)


def test_unknown_class_folder_names_it_and_lists_valid_names(tmp_path):
    x, y = make_faces(1)
    write_folder(tmp_path / "t", x, y)
    (tmp_path / "t" / "contempt").mkdir()
    with pytest.raises(DatasetError) as err:
        load_folder(tmp_path / "t")
    text = str(err.value)
    assert "contempt" in text and str(tmp_path / "t" / "contempt") in text
    for name in EMOTIONS:
        assert name in text


def test_a_class_folder_one_typo_away_is_named_with_the_name_meant(tmp_path):
    x, y = make_faces(1)
    write_folder(tmp_path / "t", x, y)
    (tmp_path / "t" / "happy").rename(tmp_path / "t" / "hapy")
    with pytest.raises(DatasetError, match=r"unknown emotion folder 'hapy' \(did you mean 'happy'\?\)"):
        load_folder(tmp_path / "t")


def test_split_folders_mixed_with_others_is_an_error(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    (tmp_path / "extras").mkdir()
    with pytest.raises(DatasetError, match="extras") as err:
        load_folder(tmp_path)
    assert "publictest" in str(err.value) and "validation" in str(err.value)


def test_two_folders_for_one_split_is_an_error_naming_both(tmp_path):
    x, y = make_faces(1)
    write_folder(tmp_path / "t", x, y, ["train"] * 7)
    write_folder(tmp_path / "t", x, y, ["val"] * 7)
    write_folder(tmp_path / "t", x, y, ["validation"] * 7)
    with pytest.raises(DatasetError, match=r"more than one folder for the same split \(val: val and validation\)"):
        load_folder(tmp_path / "t")


def test_images_in_hidden_folders_are_not_read(tmp_path):
    """A notebook's .ipynb_checkpoints copy (or a viewer's .thumbnails) inside a class folder is not training data."""
    x, y = make_faces(1)
    root = write_folder(tmp_path / "t", x, y)
    hidden = root / "happy" / ".ipynb_checkpoints"
    hidden.mkdir()
    Image.fromarray(x[0]).save(hidden / "copy.png")
    (root / "happy" / "more").mkdir()
    Image.fromarray(x[1]).save(root / "happy" / "more" / "kept.png")  # a visible subfolder is read
    ds = load_folder(root, holdout=False)
    assert len(ds["all"].y) == 7 + 1
    assert (ds["all"].y == 3).sum() == 2


def test_files_left_out_and_classes_without_faces_are_noted(tmp_path):
    """A class folder of .svg or .heic files would vanish from training without a word: the notes say what was
    left out for its suffix, and which class folders gave no face at all."""
    x, y = make_faces(1)
    root = write_folder(tmp_path / "t", x, y)
    (root / "happy" / "drawing.svg").write_text("<svg/>")
    (root / "happy" / "clip.mp4").write_bytes(b"\x00" * 8)
    (root / "sad" / "notes.txt").write_text("labels")
    for face in (root / "surprise").iterdir():
        face.unlink()
    (root / "surprise" / "photo.heic").write_bytes(b"\x00" * 8)
    ds = load_folder(root, holdout=False)
    assert len(ds["all"]) == 6 and 5 not in ds["all"].y.tolist()
    assert any(n.startswith("4 file(s) in class folders left out for their suffix (.heic 1, .mp4 1, .svg 1, .txt 1)")
               for n in ds.notes), ds.notes
    assert f"no usable image in {root / 'surprise'}: that class has no faces there" in ds.notes, ds.notes


def test_images_outside_the_class_folders_are_noted(tmp_path):
    """A val split laid out flat (val/*.png, no class folders) vanished from the dataset without a word."""
    x, y = make_faces(1)
    root = tmp_path / "t"
    write_folder(root / "train", x, y)
    (root / "val").mkdir()
    for i in range(5):
        Image.fromarray(x[i]).save(root / "val" / f"v{i}.png")
    Image.fromarray(x[0]).save(root / "train" / "stray.png")
    (root / "train" / "labels.txt").write_text("not an image: not counted")
    ds = load_folder(root)
    assert set(ds.splits) == {"train"}
    assert any(n.startswith(f"6 image(s) outside the class folders left out ({root / 'train' / 'stray.png'}, "
                            f"{root / 'val' / 'v0.png'}, {root / 'val' / 'v1.png'} and 3 more)") for n in ds.notes), \
        ds.notes


def test_other_sizes_and_colour_images_are_converted(tmp_path):
    x, _ = make_faces(1, seed=5)
    face = x[2]
    # 96x96 RGB with equal channels: area-downscaled 2x2 blocks and the luma of a grey give back the face exactly.
    big = np.repeat(np.repeat(face, 2, axis=0), 2, axis=1)
    Image.fromarray(np.stack([big] * 3, axis=-1)).save(tmp_path / "rgb96.png")
    np.testing.assert_array_equal(read_face_image(tmp_path / "rgb96.png"), face)
    Image.fromarray(np.stack([face] * 3 + [np.full_like(face, 255)], axis=-1)).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_face_image(tmp_path / "a.png"), face)
    Image.fromarray(face.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    assert np.abs(read_face_image(tmp_path / "deep.png").astype(int) - face).max() <= 1
    # A real colour image of another size: grey by ITU-R 601 luma, 48x48.
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "red.jpg", quality=100)
    out = read_face_image(tmp_path / "red.jpg")
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert abs(int(out.mean()) - round(200 * 0.299)) <= 2


def test_folder_skips_unreadable_images_and_reports_them(tmp_path):
    x, y = make_faces(1)
    write_folder(tmp_path / "t", x, y)
    (tmp_path / "t" / "happy" / "broken.png").write_bytes(b"not a png")
    ds = load_folder(tmp_path / "t", holdout=False)
    assert len(ds["all"]) == 7
    assert len(ds.problems) == 1 and "broken.png" in ds.problems[0]


def test_no_usage_column_gives_a_stratified_seeded_80_20_split(tmp_path):
    x, y = make_faces(10, seed=1)
    extra = np.flatnonzero(y == 3)[:5]  # uneven classes: happy gets 15 rows
    x, y = np.concatenate([x, x[extra]]), np.concatenate([y, y[extra]])
    path = write_csv(tmp_path / "f.csv", x, y)
    a, b, c = load_csv(path, seed=1), load_csv(path, seed=1), load_csv(path, seed=2)
    assert a.split_method == "stratified-80/20"
    np.testing.assert_array_equal(a["val"].x, b["val"].x)
    np.testing.assert_array_equal(a["train"].y, b["train"].y)
    assert not np.array_equal(a["val"].x, c["val"].x)
    counts = np.bincount(y, minlength=7)
    assert a["val"].counts() == [round(n * 0.2) for n in counts]  # 2 of each, 3 of happy's 15
    assert a["train"].counts() == [n - round(n * 0.2) for n in counts]
    # Together the two parts are the file: nothing lost, nothing twice.
    whole = load_csv(path, holdout=False)["all"]
    joined = type(whole)(np.concatenate([a["train"].x, a["val"].x]), np.concatenate([a["train"].y, a["val"].y]))
    for got, want in zip(_sorted(joined), _sorted(whole)):
        np.testing.assert_array_equal(got, want)


def test_folder_without_splits_is_split_the_same_way(tmp_path):
    x, y = make_faces(5)
    write_folder(tmp_path / "t", x, y)
    ds = load_folder(tmp_path / "t", seed=4)
    again = stratified_split(load_folder(tmp_path / "t", holdout=False)["all"], val_fraction=0.2, seed=4)
    assert ds.split_method == "stratified-80/20"
    assert ds["val"].counts() == [1] * 7
    np.testing.assert_array_equal(ds["val"].x, again[1].x)


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nope.csv")


def test_describe_splits_counts_faces_per_split_and_names_absent_classes(tmp_path):
    from fer_batch.training.datasets import describe_splits

    x, y = make_faces(2)
    keep = np.isin(y, [3, 4, 6])  # happy, sad, neutral: a three-class dataset of one's own
    ds = load_folder(write_folder(tmp_path / "t", x[keep], y[keep]), holdout=False)
    assert describe_splits(ds) == ("faces: all 6 (happy 2, sad 2, neutral 2; none of angry, disgust, fear, "
                                   "surprise)")
    # Splits as a run uses them, train first, whatever the order of the CSV's rows (FER-2013's copy here starts
    # with a PublicTest row: the line began "faces: val ...").
    x, y = make_faces(1)
    usage = ["PrivateTest"] * 2 + ["PublicTest"] * 2 + ["Training"] * 3
    ds = load_csv(write_csv(tmp_path / "f.csv", x, y, usage))
    assert describe_splits(ds).startswith("faces: train 3 (") and describe_splits(ds).index("; val 2 (") \
        < describe_splits(ds).index("; test 2 (")



@pytest.mark.parametrize("variant", ["rgba", "gray16", "palette", "rgb"])
def test_a_training_image_is_read_as_analyze_reads_it(tmp_path, variant):
    """Transparency composited onto white and 16-bit grey mapped from 0..65535, as in analysis: a face trained on is
    the face the product will see in the same file."""
    from fer_batch.sources import Source, read_image
    from synthetic_media import save_image

    yy, xx = np.mgrid[0:48, 0:48]
    rgb = np.stack([(xx * 5) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], axis=2).astype(np.uint8) // 2  # dark
    path = save_image(tmp_path / "face.png", rgb, variant=variant)
    analysed = Image.fromarray(read_image(Source(path, str(path), "image"))).convert("L")
    np.testing.assert_array_equal(read_face_image(path), np.asarray(analysed))


def test_faces_shared_by_training_and_validation_and_alias_folders_are_noted(tmp_path):
    """A class folder copied under an alias (happy/ and happiness/) was read as one class without a word, and its
    validation faces, also training faces, inflated the validation accuracy unseen."""
    x, y = make_faces(6, seed=4)
    root = write_folder(tmp_path / "faces", x, y, splits=["train"] * 35 + ["val"] * 7)
    happy = [i for i in range(35) if y[i] == EMOTIONS.index("happy")]
    for n, i in enumerate(happy[:3]):  # three training faces saved again among the validation ones
        Image.fromarray(x[i]).save(root / "val" / "happy" / f"again{n}.png")
    (root / "train" / "happiness").mkdir()
    Image.fromarray(x[0]).save(root / "train" / "happiness" / "more.png")
    ds = load_dataset(root)
    assert "class folders of one emotion read as one class: happiness and happy in train/ (happy)" in ds.notes
    assert "3 of the 10 val faces are also training faces (the same pixels): val accuracy counts them as unseen" \
        in ds.notes, ds.notes
    clean = load_dataset(write_folder(tmp_path / "clean", x, y, splits=["train"] * 35 + ["val"] * 7))
    assert not any("also training faces" in n or "read as one class" in n for n in clean.notes)


def test_a_re_measure_holds_out_the_faces_its_run_held_out(tmp_path):
    """training/ scripts re-measured a run on data without splits by load_dataset's defaults: a seed-3 run was
    measured on seed 0's holdout, 22 of whose 28 faces it had trained on, and the card said so as its accuracy."""
    import json

    from fer_batch.errors import UsageError
    from fer_batch.training.holdout import holdout, model_file

    x, y = make_faces(20, seed=1)
    folder = write_folder(tmp_path / "faces", x, y)
    runs = []
    for seed in (3, 4):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "model.keras").write_bytes(b"")
        (run / "config.json").write_text(json.dumps({"config": {"arch": "tiny", "seed": seed, "faces": "as-is"}}))
        runs.append(run)
    assert model_file(runs[0]) == runs[0] / "model.keras"
    for given in (runs[0], runs[0] / "model.keras"):  # a run folder, or its model file
        np.testing.assert_array_equal(_sorted(holdout(folder, [given])["val"])[0],
                                      _sorted(load_dataset(str(folder), seed=3)["val"])[0])
    assert not np.array_equal(_sorted(load_dataset(str(folder), seed=3)["val"])[0],
                              _sorted(load_dataset(str(folder), seed=0)["val"])[0])
    with pytest.raises(UsageError, match=r"held out different faces \(--seed 3, 4\)"):
        holdout(folder, runs)
    csv_path = write_csv(tmp_path / "priv.csv", x, y, ["Training"] * 100 + ["PrivateTest"] * (len(y) - 100))
    with pytest.raises(UsageError, match="has no validation faces to measure on"):
        holdout(csv_path, runs)


def test_a_shipped_models_card_gives_its_runs_holdout_and_a_packaged_name_is_the_packaged_model(tmp_path,
                                                                                               monkeypatch):
    """A model shipped with --dest (a card beside it, no config.json) was measured on seed 0's holdout again; and
    beside a run folder named `fast`, `fast` had meant that folder's model and its config.json."""
    import json

    from fer_batch.classify import resolve_model
    from fer_batch.errors import UsageError
    from fer_batch.training.holdout import holdout, model_file, run_settings

    x, y = make_faces(20, seed=1)
    folder = write_folder(tmp_path / "faces", x, y)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "smiles.keras").write_bytes(b"")
    card = {"name": "smiles", "members": [{"training_config": {"arch": "tiny", "seed": 3}},
                                          {"training_config": {"arch": "tiny", "seed": "3", "faces": None}}]}
    (tmp_path / "mine" / "smiles.json").write_text(json.dumps(card))
    assert [(s["seed"], s["faces"]) for s in run_settings(tmp_path / "mine" / "smiles.keras")] == [(3, "as-is")] * 2
    np.testing.assert_array_equal(_sorted(holdout(folder, [tmp_path / "mine" / "smiles.keras"])["val"])[0],
                                  _sorted(load_dataset(str(folder), seed=3)["val"])[0])
    card["members"][1]["training_config"]["seed"] = None
    (tmp_path / "mine" / "smiles.json").write_text(json.dumps(card))
    with pytest.raises(UsageError, match=r"smiles.json' gives seed None: expected a whole number"):
        holdout(folder, [tmp_path / "mine" / "smiles.keras"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast").mkdir()
    (tmp_path / "fast" / "model.keras").write_bytes(b"")
    (tmp_path / "fast" / "config.json").write_text(json.dumps({"config": {"arch": "tiny", "seed": 5}}))
    assert model_file("fast") == resolve_model("fast") and run_settings("fast") == []
