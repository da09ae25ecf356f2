"""Training and evaluation of the emotion classifiers: the library behind ``fer-batch train`` and ``evaluate``.

The top-level ``training/`` folder of the repository holds the rest: the model card (``training/README.md``,
every shipped model's recipe and figures), the scripts that ship a model into ``fer_batch/models/`` and the
scripts for lent GPU machines. One module a concern:

====================  ==========================================================================================
``train``             :func:`~.train.train`, the recipe that wires the modules below together, top to bottom
``train_config``      :class:`~.train_config.TrainConfig` (every choice, validated) and the machine's description
``datasets``          a FER-2013 CSV or an image folder read into splits (``photo_faces``: ``--faces detect``)
``architectures``     the networks and the Keras augmentation layers (``fast_augment``: the same with OpenCV)
``batches``           shuffled, augmented, mixed-up batches, a pure function of (seed, epoch, batch)
``schedules``         the learning-rate schedule, the optimizer, ``--time-budget``
``distillation``      teachers (online or cached) and the compiled trainer
``teacher_views``     a teacher's probabilities over K fixed augmented copies of each face, computed once
``checkpoints``       the checkpoint folder, ``history.csv``, ``config.json`` and the resume checks
``saved_models``      ``--init`` weights, the inference copy that is saved, the TTA wrapper
``views``             the test-time views built into a saved model (flip, ten crops)
``evaluate``          ``fer-batch evaluate`` and a run's report (``metrics``, ``plots``: its figures and charts)
``ensemble``          shipping: several models as one (their mean, or one network of their mean weights)
``compress``          shipping: convolution kernels stored as int8
``holdout``           shipping: the validation faces a model is measured on again, as its run held them out
====================  ==========================================================================================
"""
