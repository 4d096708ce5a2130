"""The command-line flags (the starter code's names and meanings), presets, and the one place where flags turn into
plain values: `model_settings()` (saved as model_flags.json) and `train_options()`."""

from absl import flags

from yt8m_tf import presets as presets_lib
from yt8m_tf.training.options import TrainOptions, default

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
    "ensemble_members", "ema_decay", "dbof_activation",
    # the competition winners' models (docs/MODELS.md): WILLOW 2017, NeXtVLAD 2018, the 2018 winners' RNNs
    "netvlad_cluster_size", "netvlad_hidden_size", "netvlad_relu", "gating", "moe_prob_gating",
    "fv_cluster_size", "fv_hidden_size", "fv_relu", "fv_couple_weights", "dbof_relu", "softdbof_maxpool",
    "gru_cells", "gru_layers",
    "nextvlad_cluster_size", "nextvlad_hidden_size", "groups", "expansion", "drop_rate", "gating_reduction",
    "mix_number", "cl_temperature", "cl_lambda",
    "use_context_gate_cluster_layer", "context_gate_cluster_bottleneck_size", "use_input_context_gate",
    "use_output_context_gate", "lstm_random_sequence",
)


def define_data_flags(default_batch_size, flag_values=FLAGS):
    flags.DEFINE_integer("batch_size", default_batch_size, "Videos per batch, global over all replicas (the starter "
                         "code's train.py took it per GPU tower: multiply its value by --num_gpu).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("num_readers", 8, "Files read in parallel.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("skip_corrupt_records", False,
                      "Skip corrupt or truncated TFRecord records (counted and reported) instead of stopping.",
                      flag_values=flag_values)
    flags.DEFINE_string("input_cache_dir", "", "Local directory of the parsed-video cache (frame level): each "
                        "training file is parsed once into it (about its own size on disk) and every epoch and later "
                        "run reads the parsed videos instead; the same batches. Empty: parse every epoch.",
                        flag_values=flag_values)


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
    flags.DEFINE_float("ema_decay", 0.0, "Keep an exponential moving average of the trainable weights, updated "
                       "after every step with this decay (0.999: about the last 1000 steps); eval.py, inference.py "
                       "and the exports use the averages, training resumes from the raw weights. 0: off.",
                       lower_bound=0.0, upper_bound=0.999999, flag_values=flag_values)
    flags.DEFINE_integer("lstm_cells", 1024, "LSTM cell size d (paper 1152).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("lstm_layers", 2, "Stacked LSTM layers.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_float("lstm_dropout", 0.0, "Dropout rate on the LSTM outputs.", lower_bound=0.0, upper_bound=0.99, flag_values=flag_values)
    flags.DEFINE_integer("iterations", 30, "Frames sampled per video by DbofModel (starter code), the WILLOW "
                         "poolings and, with --lstm_random_sequence, the LSTM / GRU models.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("sample_random_frames", True, "DbofModel samples random frames (else a random sequence).", flag_values=flag_values)
    flags.DEFINE_integer("dbof_cluster_size", 8192, "DBoF cluster (projection) size.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("dbof_hidden_size", 1024, "DBoF hidden layer size.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("dbof_add_batch_norm", True, "Batch norm in DBoF.", flag_values=flag_values)
    flags.DEFINE_string("dbof_pooling_method", "max", "DBoF pooling over frames: max or average.", flag_values=flag_values)
    flags.DEFINE_string("dbof_activation", "sigmoid", "Activation of DbofModel's cluster and hidden layers (a Keras "
                        "name). The starter's default is sigmoid; the 2017 starter code (and seilna/youtube-8m) "
                        "hard-coded relu6, which train_dirs written before this flag existed used.",
                        flag_values=flag_values)
    _define_competition_flags(flag_values)
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


def _define_competition_flags(flag_values):
    """The 2017 / 2018 winners' model flags, under their original names (antoine77340/Youtube-8M-WILLOW,
    linrongc/youtube-8m) and defaults."""
    flags.DEFINE_integer("netvlad_cluster_size", 64, "Clusters K of NetVLADModel / NetRVLADModel on rgb (audio: "
                         "K/2).", lower_bound=2, flag_values=flag_values)
    flags.DEFINE_integer("netvlad_hidden_size", 1024, "Hidden (output) width of NetVLADModel / NetRVLADModel.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("netvlad_relu", True, "NetVLADModel / NetRVLADModel hidden layer: batch norm + ReLU6 (True) "
                      "or a bias and no activation (False, WILLOW's best model).", flag_values=flag_values)
    flags.DEFINE_bool("gating", False, "Context Gating after the hidden layer of the WILLOW poolings (NetVLADModel, "
                      "NetRVLADModel, NetFVModel, SoftDBoWModel) and of BiGruModel's pooled state (the 2018 "
                      "winners' GRUbidirect).", flag_values=flag_values)
    flags.DEFINE_bool("moe_prob_gating", False, "Context Gating of MoeModel's output probabilities (WILLOW).",
                      flag_values=flag_values)
    flags.DEFINE_integer("fv_cluster_size", 64, "Clusters K of NetFVModel on rgb (audio: K/2).", lower_bound=2,
                         flag_values=flag_values)
    flags.DEFINE_integer("fv_hidden_size", 2048, "Hidden (output) width of NetFVModel.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("fv_relu", True, "NetFVModel hidden layer: batch norm + ReLU6 or a bias (as --netvlad_relu).",
                      flag_values=flag_values)
    flags.DEFINE_bool("fv_couple_weights", True, "NetFVModel centres = 0.01 x the assignment weights (True) or "
                      "their own weights (False, the published gated NetFV).", flag_values=flag_values)
    flags.DEFINE_bool("dbof_relu", True, "SoftDBoWModel hidden layer: batch norm + ReLU6 or a bias (as "
                      "--netvlad_relu; DbofModel uses --dbof_activation).", flag_values=flag_values)
    flags.DEFINE_bool("softdbof_maxpool", False, "SoftDBoWModel also max-pools the soft assignments.",
                      flag_values=flag_values)
    flags.DEFINE_bool("lstm_random_sequence", False, "LSTM / GRU models read --iterations frames drawn at random "
                      "from each video, in the order drawn, instead of all frames in order (WILLOW's LstmModel: "
                      "150; their GruModel had its own --gru_random_sequence). Evaluation takes a fixed, evenly "
                      "spread draw.", flag_values=flag_values)
    flags.DEFINE_integer("gru_cells", 1024, "GRU width of GruModel / BiGruModel.", lower_bound=2,
                         flag_values=flag_values)
    flags.DEFINE_integer("gru_layers", 2, "GRU layers of GruModel / BiGruModel (the bidirectional one included).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("nextvlad_cluster_size", 64, "Clusters K of NeXtVLAD on rgb (audio: K/2).", lower_bound=2,
                         flag_values=flag_values)
    flags.DEFINE_integer("nextvlad_hidden_size", 1024, "Hidden width H of NeXtVLADModel / MixNeXtVLADModel.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("groups", 8, "NeXtVLAD groups G on rgb (audio: G/2).", lower_bound=2,
                         flag_values=flag_values)
    flags.DEFINE_integer("expansion", 2, "NeXtVLAD expansion lambda.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_float("drop_rate", 0.5, "NeXtVLAD dropout rate after the concatenated encodings.", lower_bound=0.0,
                       upper_bound=0.99, flag_values=flag_values)
    flags.DEFINE_integer("gating_reduction", 8, "Reduction r of NeXtVLAD's SE Context Gating.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("mix_number", 3, "NeXtVLAD models in MixNeXtVLADModel.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_float("cl_temperature", 2.0, "MixNeXtVLADModel: temperature T of the online distillation.",
                       lower_bound=1e-6, flag_values=flag_values)
    flags.DEFINE_float("cl_lambda", 1.0, "MixNeXtVLADModel: weight of the online distillation KL (the paper: T^2).",
                       lower_bound=0.0, flag_values=flag_values)
    # Model Garden's optional context gates (official/projects/yt8m configs: DbofModel, MoeModel)
    flags.DEFINE_bool("use_context_gate_cluster_layer", False, "DbofModel: Model Garden's context gate on each "
                      "frame's cluster activations, before pooling.", flag_values=flag_values)
    flags.DEFINE_integer("context_gate_cluster_bottleneck_size", 0, "Bottleneck of that gate (0: a full cluster x "
                         "cluster layer).", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_bool("use_input_context_gate", False, "MoeModel: Model Garden's context gate on its input.",
                      flag_values=flag_values)
    flags.DEFINE_bool("use_output_context_gate", False, "MoeModel: Model Garden's context gate on its output "
                      "probabilities (instead of --moe_prob_gating).", flag_values=flag_values)


def define_train_flags(flag_values=FLAGS):
    """train.py's flags; their defaults are TrainOptions' (yt8m_tf/training/options.py)."""
    define_model_flags(flag_values)
    define_data_flags(default("batch_size"), flag_values)

    def define(kind, name, help_text, value=None, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(name, default(name) if value is None else value, help=help_text,
                                         flag_values=flag_values, **kwargs)

    define("string", "train_data_pattern", "Training TFRecords (glob, comma-separated, local or gs://).", "")
    define("string", "train_dir", "Directory for checkpoints, settings and summaries (shared by every worker: gs:// "
           "for several machines or a TPU node).", "/tmp/yt8m_model/")
    define("string", "preset", "A paper row or recipe (python train.py --list_presets); explicit flags win.", "")
    define("bool", "list_presets", "Print the preset names, one per line, and exit.", False)
    define("bool", "list_models", "Print the model names, one per line, and exit.", False)
    define("float", "base_learning_rate", "Initial learning rate.", lower_bound=0.0)
    define("float", "learning_rate_decay", "Learning rate decay factor.", lower_bound=0.0, upper_bound=1.0)
    define("float", "learning_rate_decay_examples", "Examples between learning rate decays (e.g. 4e6).",
           lower_bound=1)
    define("float", "learning_rate_decay_epochs", "Epochs between learning rate decays, instead of "
           "--learning_rate_decay_examples when > 0 (a schedule that means the same on any amount of data; needs "
           "countable local files).", lower_bound=0.0)
    define("integer", "warmup_steps", "Linear learning-rate warmup steps.", lower_bound=0)
    define("integer", "num_epochs", "Passes over the training data.", lower_bound=1)
    define("integer", "max_steps", "Stop after this many steps (0: num_epochs decides).", lower_bound=0)
    define("integer", "steps_per_loop", "Training steps per call to the device (a device-side loop; logs, "
           "checkpoints and exports still happen at their steps). Tens to hundreds on TPUs and fast GPUs, where the "
           "host's per-step work shows.", lower_bound=1)
    define("string", "optimizer", "Optimizer (starter names like AdamOptimizer, or adam, adamw).")
    define("float", "adam_epsilon", "Adam epsilon.", lower_bound=0.0)
    define("float", "weight_decay", "Decoupled weight decay (adamw).", lower_bound=0.0)
    define("float", "clip_gradient_norm", "Clip each gradient tensor, summed over the replicas, by this norm (the "
           "starter code's clip_gradient_norms; 0: off).", lower_bound=0.0)
    define("float", "regularization_penalty", "Weight of the regularization losses.", lower_bound=0.0)
    define("bool", "start_new_model", "Start over instead of resuming (the old train_dir is moved aside).")
    define("integer", "checkpoint_steps", "Steps between checkpoints.", lower_bound=0)
    define("integer", "keep_checkpoints", "Checkpoints kept.", lower_bound=1)
    define("integer", "export_model_steps", "Steps between SavedModel exports (0: only at the end).", lower_bound=0)
    define("integer", "log_steps", "Steps between log lines and summaries.", lower_bound=1)
    define("integer", "shuffle_buffer", "Records in the shuffle buffer.", lower_bound=1)
    define("enum", "strategy", "Distribution strategy.",
           enum_values=["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"])
    define("string", "tpu", "Cloud TPU: 'local' on a TPU VM (the default of --strategy=tpu), or a TPU node's name "
           "or grpc:// address (then every path must be gs://).")
    define("bool", "jit_compile", "Compile the training step with XLA.")
    define("enum", "mixed_precision", "Mixed precision.", enum_values=["none", "mixed_float16", "mixed_bfloat16"])
    define("string", "eval_data_pattern", "Optional data evaluated at every checkpoint.")
    define("integer", "eval_batches", "Batches of periodic evaluation (0: all).", lower_bound=0)
    define("string", "label_stats_dir", "Directory with class_counts.npy / label_correlation.npy (python -m "
           "yt8m_tf.label_stats); computed from the training files when needed and absent.")
    define("integer", "seed", "Random seed (input order, initial weights, dropout and noise).")
    define("bool", "deterministic", "Reproducible input order for a --seed (slower input pipeline).")
    define("bool", "quiet", "Log lines instead of a progress bar.", False)
    define("integer", "logical_cpu_devices", "Split the CPU into this many logical devices, to run the multi-replica "
           "code (--strategy=mirrored) without GPUs.", lower_bound=0)
    define("bool", "segment_labels", "Train on the rated segments of 2019 segment-rated files: one example per "
           "rated 5-frame segment, only the rated (segment, class) pairs enter the loss.")
    define("string", "init_from", "Start a new run from the weights of another one: its --train_dir (latest "
           "checkpoint) or a checkpoint prefix; its model settings must be this run's (losses, dropout and the like "
           "may differ). A run that has its own checkpoint resumes from it instead.")
    define("string", "freeze", "Comma-separated parts of the model whose weights stay fixed: pooling, classifier, "
           "label_processing (e.g. fine-tuning on segments with --freeze=pooling).")
    define("string", "teacher_dirs", "Distillation: comma-separated --train_dirs of trained models whose mean "
           "predictions the student also learns (the cross entropy to them, weighted by --distillation_weight).")
    define("string", "teacher_predictions", "Distillation from saved predictions instead: Kaggle-format files "
           "(inference.py with a large --top_k; e.g. out-of-fold predictions of teachers that did not train on "
           "the video) with a row for every training video.")
    define("float", "distillation_weight", "Weight of the cross entropy to the teacher; the loss on the labels gets "
           "1 minus it (the 2018 winners: 0.5).", lower_bound=0.0, upper_bound=1.0)
    define("bool", "log_device_placement", "Log the device every op runs on (TensorFlow's device placement log).")
    define("integer", "num_gpu", "Use at most this many of the visible GPUs (0: all). --batch_size stays the "
           "global batch: the starter code's per-tower batch times its --num_gpu.", lower_bound=0)


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


# A preset value that another flag replaces: given on the command line, that flag wins over the preset's.
REPLACED_BY = {"learning_rate_decay_epochs": "learning_rate_decay_examples"}


def apply_preset(name, flag_values=FLAGS):
    """A preset sets defaults; flags given on the command line win (also over a preset value they replace)."""
    for key, value in presets_lib.get_preset(name).items():
        if not flag_values[key].present and not (key in REPLACED_BY and flag_values[REPLACED_BY[key]].present):
            flag_values[key].value = value


def apply_settings(settings, flag_values=FLAGS):
    """Model settings (another run's model_flags.json, for --init_from) as defaults of the model flags; flags given
    on the command line win."""
    from yt8m_tf import registry  # what a model_flags.json written before a setting existed was trained with

    settings = {**registry.LATER_DEFAULTS, **settings}
    for key in MODEL_FLAGS:
        if key in settings and not flag_values[key].present:
            flag_values[key].value = settings[key]


def model_settings(flag_values=FLAGS):
    return {name: flag_values[name].value for name in MODEL_FLAGS}


def train_options(flag_values=FLAGS):
    names = [f.name for f in TrainOptions.__dataclass_fields__.values()]
    values = {name: flag_values[name].value for name in names if name in flag_values}
    values["progress"] = not flag_values.quiet
    return TrainOptions(**values)


def training_run(flag_values=FLAGS):
    """(model settings, TrainOptions) of train.py's parsed flags: the preset's values, then (--init_from) the model
    of the run it starts from, then (resuming) the model of --train_dir, then what the command line says."""
    from yt8m_tf.training import train_dir  # TensorFlow only when a run is set up

    if flag_values.preset:
        apply_preset(flag_values.preset, flag_values)
    if flag_values.init_from:
        apply_settings(train_dir.init_source(flag_values.init_from)[1], flag_values)
    if not flag_values.start_new_model and train_dir.has_settings(flag_values.train_dir):
        apply_settings(train_dir.read_settings(flag_values.train_dir), flag_values)
    return model_settings(flag_values), train_options(flag_values)
