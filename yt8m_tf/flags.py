"""The command-line flags (the starter code's names and meanings), presets, and the one place where flags turn into
plain values: `model_settings()` (saved as model_flags.json) and `train_options()`."""

from absl import flags

from yt8m_tf import presets as presets_lib
from yt8m_tf.training.trainer import TrainOptions

FLAGS = flags.FLAGS

# Flags that describe the model and its input: saved in train_dir/model_flags.json so that eval.py and
# inference.py need only --train_dir, and checked when a run resumes.
MODEL_FLAGS = (
    "frame_features", "model", "video_level_classifier_model", "feature_names", "feature_sizes", "num_classes",
    "max_frames", "label_loss", "l2_penalty", "output_bias_init",
    "moe_num_mixtures", "moe_hidden_size", "mlp_hidden_sizes", "mlp_layer_norm", "mlp_dropout",
    "lstm_cells", "lstm_layers", "lstm_dropout", "iterations", "sample_random_frames",
    "dbof_cluster_size", "dbof_hidden_size", "dbof_add_batch_norm", "dbof_pooling_method",
    "cnn_filters", "position_encoding_length", "noise_scale", "pooling_l2_normalize",
    "label_alpha", "label_beta", "label_gamma", "huber_delta", "center_loss_lambda",
    "input_normalization", "mlp_activation", "mlp_input_noise", "label_smoothing", "focal_gamma_neg",
    "knn_memory_size", "knn_k", "knn_temperature", "knn_weight", "knn_output_weight", "knn_output_temperature",
    "ensemble_members",
)


def define_data_flags(default_batch_size):
    flags.DEFINE_integer("batch_size", default_batch_size, "Videos per batch (global, over all replicas).",
                         lower_bound=1)
    flags.DEFINE_integer("num_readers", 8, "Files read in parallel.", lower_bound=1)
    flags.DEFINE_bool("skip_corrupt_records", False,
                      "Skip corrupt or truncated TFRecord records (counted and reported) instead of stopping.")
    flags.DEFINE_string("input_cache_dir", "", "Local directory of the parsed-video cache (frame level): each "
                        "training file is parsed once into it (about its own size on disk) and every epoch and later "
                        "run reads the parsed videos instead; the same batches. Empty: parse every epoch.")


def define_model_flags(flag_values=FLAGS):
    """Model flags: the starter code's (google/youtube-8m) and the paper's (seilna/youtube-8m)."""
    flags.DEFINE_bool("frame_features", False, "Read frame-level data (SequenceExample) instead of video-level.", flag_values=flag_values)
    flags.DEFINE_string("model", "LogisticModel", "Model name (python train.py --list_models).", flag_values=flag_values)
    flags.DEFINE_string("video_level_classifier_model", "MoeModel",
                        "Classifier h on top of a frame-level pooling model.", flag_values=flag_values)
    flags.DEFINE_string("feature_names", "mean_rgb,mean_audio", "Features to read, concatenated in this order.", flag_values=flag_values)
    flags.DEFINE_string("feature_sizes", "1024,128", "Length of each feature in --feature_names.", flag_values=flag_values)
    flags.DEFINE_integer("num_classes", 3862, "Number of classes (2017 data: 4716).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("max_frames", 300, "Frames per video after truncation / padding.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_string("label_loss", "CrossEntropyLoss", "Loss L (CrossEntropyLoss, HingeLoss, SoftmaxLoss, "
                        "PseudoHuberLoss).", flag_values=flag_values)
    flags.DEFINE_float("l2_penalty", 1e-8, "L2 penalty of the classifier weights.", lower_bound=0.0, flag_values=flag_values)
    flags.DEFINE_float("output_bias_init", 0.0, "Initial output bias (logit) of the classifiers: LogisticModel's "
                       "bias, MoeModel's expert biases, MlpModel's output bias (which exists only when this is not "
                       "0); e.g. -6.9 = log(1/1000) for rare classes.", flag_values=flag_values)
    flags.DEFINE_enum("input_normalization", "none", ["none", "l2", "l2_scaled"],
                      "Normalise each input feature (--feature_names block) to unit L2 norm (l2), or to L2 norm "
                      "sqrt(width) (l2_scaled), as the model's first op; frame-level: every frame.",
                      flag_values=flag_values)
    flags.DEFINE_integer("moe_num_mixtures", 2, "Experts per class in MoeModel.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("moe_hidden_size", 0, "Hidden width d' of the 2-layer MoE (Eq. 16-17); 0 = 1 layer.",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_string("mlp_hidden_sizes", "4096,4096,4096", "Hidden widths of MlpModel (2.3.3).", flag_values=flag_values)
    flags.DEFINE_bool("mlp_layer_norm", False, "Layer normalization in every MlpModel layer.", flag_values=flag_values)
    flags.DEFINE_float("mlp_dropout", 0.0, "Dropout rate after every MlpModel layer.", lower_bound=0.0,
                       upper_bound=0.99, flag_values=flag_values)
    flags.DEFINE_string("mlp_activation", "relu", "Activation of the MlpModel hidden layers (a Keras name: relu, "
                        "gelu, ...).", flag_values=flag_values)
    flags.DEFINE_float("mlp_input_noise", 0.0, "Standard deviation of Gaussian noise added to the MlpModel input "
                       "while training (0: none).", lower_bound=0.0, flag_values=flag_values)
    flags.DEFINE_integer("knn_memory_size", 0, "MlpModel only: keep a memory of this many training videos (keyed "
                         "by the last hidden layer) and mix a k-NN vote into the predictions; 0: off. Should be at "
                         "least the number of training videos.", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("knn_k", 50, "Neighbours voting in the k-NN memory.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_float("knn_temperature", 0.05, "Temperature of the k-NN vote weights over cosine similarities.",
                       lower_bound=1e-6, flag_values=flag_values)
    flags.DEFINE_float("knn_weight", 0.3, "Weight of the k-NN vote in the predictions.", lower_bound=0.0,
                       upper_bound=1.0, flag_values=flag_values)
    flags.DEFINE_float("knn_output_weight", 0.0, "Weight of a second k-NN vote whose keys are the model's own "
                       "predictions for the training videos (sqrt, top 32 entries), recomputed before every "
                       "checkpoint; 0: off.", lower_bound=0.0, upper_bound=1.0, flag_values=flag_values)
    flags.DEFINE_float("knn_output_temperature", 0.02, "Temperature of that vote's weights over cosine "
                       "similarities.", lower_bound=1e-6, flag_values=flag_values)
    flags.DEFINE_integer("ensemble_members", 1, "Independently trained copies of the classifier h (with its k-NN "
                         "memory) in one model, their probabilities averaged (paper 3.3); training costs that many "
                         "times one.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("lstm_cells", 1024, "LSTM cell size d (paper 1152).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("lstm_layers", 2, "Stacked LSTM layers.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_float("lstm_dropout", 0.0, "Dropout rate on the LSTM outputs.", lower_bound=0.0, upper_bound=0.99, flag_values=flag_values)
    flags.DEFINE_integer("iterations", 30, "Frames sampled per video by DbofModel (starter code).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("sample_random_frames", True, "DbofModel samples random frames (else a random sequence).", flag_values=flag_values)
    flags.DEFINE_integer("dbof_cluster_size", 8192, "DBoF cluster (projection) size.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("dbof_hidden_size", 1024, "DBoF hidden layer size.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("dbof_add_batch_norm", True, "Batch norm in DBoF.", flag_values=flag_values)
    flags.DEFINE_string("dbof_pooling_method", "max", "DBoF pooling over frames: max or average.", flag_values=flag_values)
    flags.DEFINE_integer("cnn_filters", 64, "Channels of the temporal CNN pooling (2.2.2).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_string("position_encoding_length", "num_frames",
                        "T in the position encoding (2.2.3): num_frames (per video) or max_frames (original code).", flag_values=flag_values)
    flags.DEFINE_float("noise_scale", 1.0, "Scale of the adaptive noise gamma (2.2.5).", lower_bound=0.0, flag_values=flag_values)
    flags.DEFINE_bool("pooling_l2_normalize", False, "L2-normalise the pooled sums (the original code did; the "
                      "paper's equations do not): LSTM M_l/O_l, CNN, position encoding, attention.", flag_values=flag_values)
    flags.DEFINE_float("label_alpha", 1.0, "alpha of the label processing layer (Eq. 20).", flag_values=flag_values)
    flags.DEFINE_float("label_beta", 0.0, "beta (fixed M_c) of the label processing layer (Eq. 20).", flag_values=flag_values)
    flags.DEFINE_float("label_gamma", 0.0, "gamma (trainable M'_c) of the label processing layer (Eq. 20).", flag_values=flag_values)
    flags.DEFINE_float("huber_delta", 0.5, "delta of PseudoHuberLoss (Eq. 23).", lower_bound=1e-6, flag_values=flag_values)
    flags.DEFINE_float("label_smoothing", 0.0, "Binary label smoothing s of CrossEntropyLoss / PseudoHuberLoss: "
                       "targets y (1 - s) + s / 2.", lower_bound=0.0, upper_bound=1.0, flag_values=flag_values)
    flags.DEFINE_float("focal_gamma_neg", 0.0, "Asymmetric focusing of CrossEntropyLoss (Ridnik et al. 2021): each "
                       "negative class term is weighted by p^gamma; 0 = the starter loss.", lower_bound=0.0,
                       flag_values=flag_values)
    flags.DEFINE_float("center_loss_lambda", 0.0, "lambda of the multi-label center loss (Eq. 22); 0 = off.",
                       lower_bound=0.0, flag_values=flag_values)


def define_train_flags():
    define_model_flags()
    define_data_flags(default_batch_size=1024)
    flags.DEFINE_string("train_data_pattern", "", "Training TFRecords (glob, comma-separated, local or gs://).")
    flags.DEFINE_string("train_dir", "/tmp/yt8m_model/", "Directory for checkpoints, settings and summaries.")
    flags.DEFINE_string("preset", "", "A paper row or recipe (python train.py --list_presets); explicit flags win.")
    flags.DEFINE_bool("list_presets", False, "Print the preset names, one per line, and exit.")
    flags.DEFINE_bool("list_models", False, "Print the model names, one per line, and exit.")
    flags.DEFINE_float("base_learning_rate", 0.01, "Initial learning rate.", lower_bound=0.0)
    flags.DEFINE_float("learning_rate_decay", 0.95, "Learning rate decay factor.", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_integer("learning_rate_decay_examples", 4000000, "Examples between learning rate decays.",
                         lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 0, "Linear learning-rate warmup steps.", lower_bound=0)
    flags.DEFINE_integer("num_epochs", 5, "Passes over the training data.", lower_bound=1)
    flags.DEFINE_integer("max_steps", 0, "Stop after this many steps (0: num_epochs decides).", lower_bound=0)
    flags.DEFINE_string("optimizer", "AdamOptimizer", "Optimizer (starter names like AdamOptimizer, or adam, adamw).")
    flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon.", lower_bound=0.0)
    flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay (adamw).", lower_bound=0.0)
    flags.DEFINE_float("clip_gradient_norm", 1.0, "Clip each gradient by this norm (0: off).", lower_bound=0.0)
    flags.DEFINE_float("regularization_penalty", 1.0, "Weight of the regularization losses.", lower_bound=0.0)
    flags.DEFINE_bool("start_new_model", False, "Start over instead of resuming (the old train_dir is moved aside).")
    flags.DEFINE_integer("checkpoint_steps", 1000, "Steps between checkpoints.", lower_bound=0)
    flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept.", lower_bound=1)
    flags.DEFINE_integer("export_model_steps", 0, "Steps between SavedModel exports (0: only at the end).",
                         lower_bound=0)
    flags.DEFINE_integer("log_steps", 100, "Steps between log lines and summaries.", lower_bound=1)
    flags.DEFINE_integer("shuffle_buffer", 1024, "Records in the shuffle buffer.", lower_bound=1)
    flags.DEFINE_enum("strategy", "auto", ["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"],
                      "Distribution strategy.")
    flags.DEFINE_string("tpu", "", "Cloud TPU name or grpc:// address.")
    flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
    flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"], "Mixed precision.")
    flags.DEFINE_string("eval_data_pattern", "", "Optional data evaluated at every checkpoint.")
    flags.DEFINE_integer("eval_batches", 0, "Batches of periodic evaluation (0: all).", lower_bound=0)
    flags.DEFINE_string("label_stats_dir", "", "Directory with class_counts.npy / label_correlation.npy "
                        "(python -m yt8m_tf.label_stats); computed from the training files when needed and absent.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_bool("deterministic", False, "Reproducible input order for a --seed (slower input pipeline).")
    flags.DEFINE_bool("quiet", False, "Log lines instead of a progress bar.")
    flags.DEFINE_integer("logical_cpu_devices", 0, "Split the CPU into this many logical devices, to run the "
                         "multi-replica code (--strategy=mirrored) without GPUs.", lower_bound=0)


def default_model_settings(**overrides):
    """The model settings of the flag defaults (what train.py would save) without touching the global FLAGS."""
    values = flags.FlagValues()
    define_model_flags(values)
    values(["defaults"])
    settings = {name: values[name].value for name in MODEL_FLAGS}
    unknown = set(overrides) - set(settings)
    if unknown:
        raise KeyError(f"not model settings: {sorted(unknown)}")
    settings.update(overrides)
    return settings


def apply_preset(name):
    """A preset sets defaults; flags given on the command line win."""
    for key, value in presets_lib.get_preset(name).items():
        if not FLAGS[key].present:
            FLAGS[key].value = value


def model_settings():
    return {name: FLAGS[name].value for name in MODEL_FLAGS}


def train_options():
    names = [f.name for f in TrainOptions.__dataclass_fields__.values()]
    values = {name: FLAGS[name].value for name in names if name in FLAGS}
    values["progress"] = not FLAGS.quiet
    return TrainOptions(**values)
