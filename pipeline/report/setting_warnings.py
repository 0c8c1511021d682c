"""Settings that look wrong for the images: one line each in the report, naming the setting to change."""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize

from pipeline.config import ROW_SECTIONS
from pipeline.data import image_size

# Where a mirror image shows another class (digits, text), a model trained on the images scores far
# worse on their mirror images; on photos of things that face either way the two scores stay close.
# Flips then teach the heads pictures that belong to no class.
MIRROR_DROP = 0.10
# Above this many training images of the largest class per image of the smallest, a model gains accuracy
# by favouring the large class, and the small one's recall is what pays (benchmarks/imbalance.py).
IMBALANCE_RATIO = 3


def input_size_warning(input_size, median_side):
    """A line where the images lose most of their detail at `input_size` and a larger size is worth trying."""
    if input_size >= min(image_size.LARGE, image_size.SIZE_RATIO * median_side):
        return None
    return (f"backbone.input_size is {input_size} px, far below the images' median shorter side of "
            f"{median_side:.0f} px, so most of their detail is lost: try backbone.input_size: "
            f"{image_size.LARGE} (or {image_size.AUTO})")


def mirror_scores(features, mirrored, y):
    """(accuracy on held-back images, accuracy on their mirror images) of a logistic regression, by 5-fold CV.

    It trains on images only, never on mirror images; None where a class has too few images to fold.
    """
    folds = min(5, np.unique(y, return_counts=True)[1].min())
    if folds < 2:
        return None
    X, X_mirrored = (normalize(a.reshape(len(a), -1)) for a in (features, mirrored))
    scores = []
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
        model = LogisticRegression(C=10.0, max_iter=2000).fit(X[fit], y[fit])
        scores.append((model.score(X[held], y[held]), model.score(X_mirrored[held], y[held])))
    return tuple(float(s) for s in np.mean(scores, axis=0))


def mirror_warning(scores):
    if scores is None or scores[0] - scores[1] < MIRROR_DROP:
        return None
    return (f"a model of the training images scores {scores[0]:.2f} on those it did not see but {scores[1]:.2f} on "
            "their mirror images, so a mirror image is not a picture of its class (text, digits, ...): set "
            "augment.horizontal_flip: false and evaluate.tta: false")


def class_balance_warning(labels, settings=None):
    """One line when the largest class has more than IMBALANCE_RATIO times the training images of the smallest.

    `labels`: the class of every training image. Nothing where every row of `settings` (params.yaml)
    already sets class_weight.
    """
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(classes) < 2 or counts.max() <= IMBALANCE_RATIO * counts.min():
        return None
    rows = [spec for section in ROW_SECTIONS for spec in ((settings or {}).get(section) or {}).values()]
    if rows and all(isinstance(spec, dict) and "class_weight" in spec for spec in rows):
        return None
    large, small = counts.argmax(), counts.argmin()
    return (f"the largest class, {classes[large]} ({counts[large]} training images), has "
            f"{counts[large] / counts[small]:.1f}x the images of the smallest, {classes[small]} ({counts[small]}), "
            "so accuracy rewards favouring the large class: compare balanced accuracy, and try "
            "class_weight: balanced in the heads, finetune and scratch rows")


def warnings(settings, files, input_size, mirror_sample=None, labels=None):
    """The report's warnings for params.yaml `settings` on the training images `files`, resized to `input_size` px.

    Every check reads training images only: acting on a warning drawn from the held-out split would
    tune on it. `mirror_sample`: (features, their mirror images' features, labels) of training images
    (pipeline.features.store.mirror_sample), which the flip check needs (without them it is skipped).
    `labels`: the class of each training image, for the class balance check (without them it is skipped).
    """
    lines = [input_size_warning(input_size, image_size.median_shorter_side(image_size.sample(files)))]
    flips = settings["augment"]["horizontal_flip"] or settings["evaluate"]["tta"]
    if flips and mirror_sample is not None and len(mirror_sample[0]) >= 10:
        lines.append(mirror_warning(mirror_scores(*mirror_sample)))
    if labels is not None:
        lines.append(class_balance_warning(labels, settings))
    return [line for line in lines if line]
