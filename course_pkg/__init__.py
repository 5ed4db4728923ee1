"""Going Deeper — the course package: data → models → train → evaluate → grade.

One module per job:

- :mod:`course_pkg.data`        MNIST and CIFAR-10 (offline copies or torchvision download), one
                                preprocessing convention, a GPU-resident loader (a package)
- :mod:`course_pkg.models`      every network of the course, behind one registry (``create``)
- :mod:`course_pkg.profile`     parameter / multiply-add tables, the paper's Table 1 checked
- :mod:`course_pkg.device`      the device, the autocast precision and the memory layout
- :mod:`course_pkg.distributed` DDP under ``torchrun``: ranks, the process group, reductions
- :mod:`course_pkg.recipes`     one training recipe per data set (``CIFAR10``, ``MNIST``)
- :mod:`course_pkg.train`       the one training loop, ``fit()``
- :mod:`course_pkg.train_state` a training run's history, saving and resuming it
- :mod:`course_pkg.checkpoint`  plain state_dict checkpoints, read only with ``weights_only=True``
- :mod:`course_pkg.pretrained`  the reference checkpoints shipped with the package
- :mod:`course_pkg.multicrop`   the paper's 1, 10 and 144 views of an image
- :mod:`course_pkg.multicrop_figures`  those views drawn, results tabulated like Table 3
- :mod:`course_pkg.accuracy`    accuracy, counted by one loop; the validation pass of ``fit``
- :mod:`course_pkg.evaluate`    the paper's multi-crop evaluation (Table 3)
- :mod:`course_pkg.results`     the benchmark results the book shows: read, tabulate, plot
- :mod:`course_pkg.compare`     two classifiers on the same test images: paired differences
- :mod:`course_pkg.diagrams`    the inception module and GoogLeNet drawn from the modules' own layers
- :mod:`course_pkg.book`        the one import every chapter of the book starts with
- :mod:`course_pkg.checks`      the student's side of grading: self-checks, diagnoses, the handover
- :mod:`course_pkg.grading`     the instructor's side: ``course grade`` (never imported by a notebook)
- :mod:`course_pkg.cli`         the ``course`` command
"""

__version__ = "0.1.0"
