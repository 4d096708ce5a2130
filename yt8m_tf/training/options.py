"""`TrainOptions`: everything about a training run that is not the model (the model settings go to
model_flags.json). The one source of the training defaults: train.py's flags take theirs from here."""

import dataclasses


@dataclasses.dataclass
class TrainOptions:
    train_data_pattern: str
    train_dir: str
    batch_size: int = 1024  # global, over all replicas (the starter code's was per GPU tower)
    base_learning_rate: float = 0.01
    learning_rate_decay: float = 0.95
    learning_rate_decay_examples: float = 4000000
    learning_rate_decay_epochs: float = 0.0  # > 0: decay every this many epochs instead (presets)
    warmup_steps: int = 0
    num_epochs: int = 5
    max_steps: int = 0
    steps_per_loop: int = 1
    optimizer: str = "AdamOptimizer"
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    clip_gradient_norm: float = 1.0
    regularization_penalty: float = 1.0
    start_new_model: bool = False
    checkpoint_steps: int = 1000
    keep_checkpoints: int = 5
    export_model_steps: int = 1000  # the starter code's; 0: only at the end
    log_steps: int = 100
    num_readers: int = 8
    shuffle_buffer: int = 1024
    strategy: str = "auto"
    tpu: str = ""
    jit_compile: bool = False
    mixed_precision: str = "none"
    eval_data_pattern: str = ""
    eval_batches: int = 0
    seed: int = 0
    progress: bool = True
    skip_corrupt_records: bool = False
    input_cache_dir: str = ""  # parsed-video cache of frame-level training input
    top_k: int = 20
    logical_cpu_devices: int = 0
    num_gpu: int = 0  # 0: every visible GPU
    log_device_placement: bool = False
    label_stats_dir: str = ""
    deterministic: bool = False
    segment_labels: bool = False  # train on 2019 segment ratings (only the rated pairs count)
    init_from: str = ""  # a new run starts from this train_dir's (or checkpoint's) weights
    freeze: str = ""  # comma-separated parts kept fixed: pooling, classifier, label_processing
    teacher_dirs: str = ""  # distillation: trained models run beside the student
    teacher_predictions: str = ""  # ... or their saved predictions (Kaggle-format files)
    distillation_weight: float = 0.5


def default(name):
    """The default of TrainOptions field `name`."""
    return TrainOptions.__dataclass_fields__[name].default
