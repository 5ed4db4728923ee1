# %% [markdown]
# # Assignment 4 — Multi-crop evaluation (section 7, Table 3)
#
# GoogLeNet's winning entry classified every image from **144 views** and averaged the
# softmax probabilities.  You will write the 10-crop and the 144-crop views and the
# averaging, then measure what they gain on your CIFAR network from assignment 3.
#
# The exact protocol (the course's `course_pkg.evaluate` follows it; the graded tests
# compare your views with it pixel for pixel):
#
# - **resize** so the shorter side is `s`: `F.interpolate(x, size, mode="bilinear",
#   antialias=True, align_corners=False)`; the longer side becomes `int(s * long / short)`;
#   skip the resize when the size does not change;
# - **centre offset** of a window `c` in a side `L`: `int(round((L - c) / 2))`;
# - **10 crops** (`ten_crop`): views 0-4 are the top-left, top-right, bottom-left,
#   bottom-right and centre crops of the image; views 5-9 are the same five positions cut
#   from the horizontally mirrored image `torch.flip(image, [-1])` (so view 5, the top-left
#   crop of the mirrored image, is the mirror of view 1, the top-right crop);
# - **144 crops** (`views_144`): for each scale `s`: resize; three `s x s` squares (left,
#   centre, right; top, centre, bottom for portrait images); from each square the 4 corner
#   crops, the centre crop and the whole square resized to `crop x crop`.  Each of these six
#   views is immediately followed by its own mirror image, `torch.flip(view, [-1])` (the
#   mirrored crop, not a crop of the mirrored image).  Order: scale, square, position
#   (top-left, top-right, bottom-left, bottom-right, centre, whole), mirror (no, yes) — the
#   last varying fastest.
#
# Every graded part has a self-check cell after it: right or wrong, the first cause of a
# difference on its first line (e.g. which view is out of order), and the points at stake.

# %% nbgrader={"grade": false, "grade_id": "code-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Setup.  In Colab this installs the course package (once per session); elsewhere
# `pip install -e .` in the course repository does.
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/going-deeper-course/going-deeper"], check=True)

import torch
import torch.nn as nn
import course_pkg
from course_pkg import checks
from course_pkg.checks import handover
import torch.nn.functional as F
torch.manual_seed(0)


# %% [markdown]
# ## 1. Ten crops
#
# `ten_crop(image, crop)`: `image` is `[C, H, W]` (float); return `[10, C, crop, crop]`.

# %% nbgrader={"grade": false, "grade_id": "ten_crop", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ten_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
    ### BEGIN SOLUTION
    def five(x):
        h, w = x.shape[-2:]
        top, left = int(round((h - crop) / 2)), int(round((w - crop) / 2))
        origins = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left)]
        return [x[..., r:r + crop, c:c + crop] for r, c in origins]

    return torch.stack(five(image) + five(torch.flip(image, [-1])))
    ### END SOLUTION


# %%
# Self-check (not graded): ten_crop on a landscape and a portrait image, view by view.
checks.self_check_views(ten_crop, "ten", points=3)


# %% nbgrader={"grade": true, "grade_id": "test_ten_crop", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# ten_crop on a 40x48, a 51x37 and a 33x33 image, view by view.
_g = torch.Generator().manual_seed(7)
handover.give(ten_crop=handover.function([((torch.rand(3, _h, _w, generator=_g), _c), {})
                                          for _h, _w, _c in ((40, 48, 32), (51, 37, 24), (33, 33, 33))]))
### BEGIN HIDDEN TESTS
from course_pkg.evaluate import multicrop_views as _views
_gen = torch.Generator().manual_seed(7)
for _h, _w, _c in ((40, 48, 32), (51, 37, 24), (33, 33, 33)):
    _img = torch.rand(3, _h, _w, generator=_gen)
    _ref, _ = _views(_img, "ten", crop=_c, scales=None)
    checks.fail_on(checks.diagnose_views(checks.build(ten_crop, _img, _c), _ref, "ten"), f"ten_crop on a {_h}x{_w} image")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The paper's 144 crops
#
# `views_144(image, scales, crop)`: `[len(scales) * 36, C, crop, crop]`.

# %% nbgrader={"grade": false, "grade_id": "views_144", "locked": false, "schema_version": 3, "solution": true, "task": false}
def views_144(image: torch.Tensor, scales=(256, 288, 320, 352), crop: int = 224) -> torch.Tensor:
    ### BEGIN SOLUTION
    out = []
    for s in scales:
        h, w = image.shape[-2:]
        size = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        x = image if size == (h, w) else F.interpolate(
            image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        h, w = x.shape[-2:]
        if w >= h:
            starts = [(0, 0), (0, int(round((w - h) / 2))), (0, w - h)]
        else:
            starts = [(0, 0), (int(round((h - w) / 2)), 0), (h - w, 0)]
        side = min(h, w)
        for r0, c0 in starts:
            square = x[..., r0:r0 + side, c0:c0 + side]
            mid = int(round((side - crop) / 2))
            origins = [(0, 0), (0, side - crop), (side - crop, 0), (side - crop, side - crop), (mid, mid)]
            crops = [square[..., r:r + crop, c:c + crop] for r, c in origins]
            whole = square if side == crop else F.interpolate(
                square[None], size=(crop, crop), mode="bilinear", antialias=True, align_corners=False)[0]
            for v in crops + [whole]:
                out += [v, torch.flip(v, [-1])]
    return torch.stack(out)
    ### END SOLUTION


# %%
# Self-check (not graded): views_144 on a landscape and a portrait image, view by view.
checks.self_check_views(views_144, "googlenet144", points=4)


# %% nbgrader={"grade": true, "grade_id": "test_views_144", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# views_144 on a 40x50 (four scales), a 45x30 and a 32x32 image, view by view.
_g = torch.Generator().manual_seed(11)
handover.give(views_144=handover.function(
    [((torch.rand(3, _h, _w, generator=_g), _scales, _c), {})
     for _h, _w, _scales, _c in ((40, 50, (40, 48, 56, 64), 32), (45, 30, (36, 44), 28), (32, 32, (32, 40), 24))]))
### BEGIN HIDDEN TESTS
from course_pkg.evaluate import multicrop_views as _views
_gen = torch.Generator().manual_seed(11)
for _h, _w, _scales, _c in ((40, 50, (40, 48, 56, 64), 32), (45, 30, (36, 44), 28), (32, 32, (32, 40), 24)):
    _img = torch.rand(3, _h, _w, generator=_gen)
    _ref, _ = _views(_img, "googlenet144", crop=_c, scales=_scales)
    checks.fail_on(checks.diagnose_views(checks.build(views_144, _img, _scales, _c), _ref, "googlenet144"),
                   f"views_144 on a {_h}x{_w} image, scales {_scales}")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Averaging
#
# `average_softmax(logits)`: `logits` is `[V, classes]` (one row per view); return the
# class probabilities `[classes]` the paper uses: the mean over views of the softmax.

# %% nbgrader={"grade": false, "grade_id": "average_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def average_softmax(logits: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return logits.softmax(-1).mean(0)
    ### END SOLUTION


# %%
# Self-check (not graded): average_softmax on the logits of 10 views.
checks.self_check_average(average_softmax, points=2)


# %% nbgrader={"grade": true, "grade_id": "test_average_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# average_softmax on the logits of 10 views of 7 classes.
handover.give(average_softmax=handover.function(
    [((torch.randn(10, 7, generator=torch.Generator().manual_seed(5)) * 3,), {})]))
### BEGIN HIDDEN TESTS
from course_pkg.evaluate import reduce_views as _reduce
_logits = torch.randn(10, 7, generator=torch.Generator().manual_seed(5)) * 3
_got = checks.build(average_softmax, _logits)
for _rule, _why in (("logit_mean", "the softmax of the mean logits (torchvision's TenCrop example)"),
                    ("max", "the maximum over views (the paper tried it; it was worse)")):
    checks.require(not (isinstance(_got, torch.Tensor) and _got.shape == (7,)
                        and torch.allclose(_got, _reduce(_logits[None], _rule)[0], atol=1e-5)),
                   f"average_softmax computes {_why}; the paper averages the softmax probabilities")
checks.require(isinstance(_got, torch.Tensor) and _got.shape == (7,),
               "average_softmax must return one probability per class, shape (7,) here")
checks.require(torch.allclose(_got, _reduce(_logits[None], "softmax_mean")[0], atol=1e-5),
               "average_softmax: take the softmax of each view's logits, then the mean over views")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. What do the crops gain on your network?
#
# Run this with your CIFAR-10 GoogLeNet from assignment 3 (copy its class into the cell
# below or upload `googlenet_cifar.pt` and the class).  The views are chapter 8's, so that your
# table and the chapter's compare row by row: the paper's scales 256/288/320/352 for 224-pixel
# crops, shrunk by 32/224 to 37/41/46/50 pixels for 32-pixel crops (`table3.CIFAR_SCALES`);
# 1 crop is the centre of the image resized to 37, 10 crops the ten-crop at 37, and two views of
# the image itself: alone, and with its mirror.  Your network trained on padded crops and mirrors,
# like chapter 8's pad-crop network: which of its rows do yours resemble, and why do the mirror
# and the upsampled views differ?  This part is not graded — write what you observe.
#
# By default it measures 200 test images: a few minutes on 2 CPU cores, enough to see the
# trend but with a wide margin of error (one image is half a point).  `FULL = True` (or the
# environment variable `COURSE_FULL=1`) measures 2,000, the figure to report: minutes on a
# GPU, over an hour on a 2-core CPU.

# %%
import os
from course_pkg import data, table3
from course_pkg.evaluate import evaluate_multicrop, format_table3
from course_pkg.models import create

FULL = os.environ.get("COURSE_FULL") == "1"  # True: 2,000 images, the figure to report
N_IMAGES = 2000 if FULL else 200

if os.environ.get("NBGRADER_EXECUTION") or not os.path.exists("googlenet_cifar.pt"):
    print("skipped: needs googlenet_cifar.pt from assignment 3 next to this notebook")
else:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The course's googlenet_cifar has the layer names of assignment 3: your checkpoint loads
    # into it if you kept them.  Otherwise paste your GoogLeNet class here and build that.
    model = create("googlenet_cifar", stem="16")
    checks.load_student_checkpoint(model, "googlenet_cifar.pt")
    model = model.to(device)
    images, labels = data.load_arrays("cifar10", "test", limit=N_IMAGES)
    # chapter 8's view sets (table3.VIEW_SETS), in its order, but for the padded ten-crop
    views = [table3.VIEW_SETS[key] for key in ("centre", "ten", "144", "image", "mirror")]
    schemes = {v.label: dict(scheme=v.scheme, crop=v.crop, scales=v.scales) for v in views}
    rows = evaluate_multicrop(model, data.prepare(images, "cifar10"), torch.as_tensor(labels), schemes,
                              preprocess=lambda v: data.normalize(v.to(device), "cifar10"),
                              chunk_size=4096)
    print(format_table3(rows))

# %% [markdown]
# *Your observations (not graded):*
