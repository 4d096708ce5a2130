"""The 2019 recipe on synthetic segment data at a larger width (issue #17): a frame-level model trained on video
labels, then fine-tuned on the rated segments; segment MAP@100K of each on held-out videos.

    python bench/quality_segments.py [--videos 3000] [--model NeXtVLADModel]

Data: `yt8m_tf.synthetic` with segments (each rated class visible only in windows of 5-10 frames; the video label
says only that it is somewhere), 200 classes, 256 + 64 features, 30-90 frames, --videos training videos and a
fifth as many held out. Rows: the video-level model applied to segments; fine-tuned with the whole model
trainable; fine-tuned with g frozen (--freeze=pooling). Prints a table and the fine-tuned MAP last.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

CLASSES, RGB, AUDIO = 200, 256, 64
MODELS = {
    "NeXtVLADModel": {"model": "NeXtVLADModel", "nextvlad_cluster_size": 16, "nextvlad_hidden_size": 256,
                      "groups": 8, "gating_reduction": 8, "drop_rate": 0.5},
    "LstmMOModel": {"model": "LstmMOModel", "lstm_cells": 128, "lstm_layers": 1, "pooling_l2_normalize": True,
                    "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2},
}


def segment_map(train_dir, pattern):
    from yt8m_tf import metrics, registry
    from yt8m_tf.training import train_dir as train_dir_lib
    from yt8m_tf.training.evaluation import model_inputs

    model, settings, _ = train_dir_lib.load_trained_model(train_dir)
    accumulator = metrics.SegmentEvaluationMetrics(settings["num_classes"])
    for batch in registry.make_reader(settings, segment_labels=True).dataset(pattern, 256):
        accumulator.accumulate(model(model_inputs(batch))["predictions"].numpy(), batch["labels"].numpy(),
                               batch["label_weights"].numpy())
    return accumulator.get()["segment_map"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3000)
    parser.add_argument("--model", default="NeXtVLADModel", choices=tuple(MODELS))
    parser.add_argument("--epochs", type=int, default=6, help="video-label epochs")
    parser.add_argument("--segment_epochs", type=int, default=3)
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    from yt8m_tf import flags as flags_lib, synthetic
    from yt8m_tf.training import trainer

    root = tempfile.mkdtemp(prefix="yt8m-bench-segments-")
    common_data = dict(level="frame", num_classes=CLASSES, rgb_size=RGB, audio_size=AUDIO, min_frames=30,
                       max_frames=90, segments=True)
    synthetic.write_dataset(root, num_shards=8, videos_per_shard=args.videos // 8, seed=0, prefix="train",
                            **common_data)
    synthetic.write_dataset(root, num_shards=2, videos_per_shard=args.videos // 10, seed=1, prefix="validate",
                            **common_data)
    train, validate = f"{root}/train*.tfrecord", f"{root}/validate*.tfrecord"
    settings = flags_lib.default_model_settings(frame_features=True, feature_names="rgb,audio",
                                                feature_sizes=f"{RGB},{AUDIO}", num_classes=CLASSES, max_frames=90,
                                                **MODELS[args.model])

    def run(name, **overrides):
        options = dict(train_data_pattern=train, train_dir=os.path.join(root, name), batch_size=64,
                       base_learning_rate=0.001, progress=False, checkpoint_steps=0, log_steps=10 ** 9)
        started = time.time()
        trainer.train(settings, trainer.TrainOptions(**{**options, **overrides}))
        return time.time() - started, segment_map(os.path.join(root, name), validate)

    rows = []
    video_seconds, video_map = run("video", num_epochs=args.epochs)
    rows.append(["trained on video labels (applied to segments)", f"{video_seconds:.0f}", f"{video_map:.4f}", ""])
    tuned_map = video_map
    for name, freeze in (("tuned", ""), ("tuned-frozen-g", "pooling")):
        seconds, value = run(name, segment_labels=True, init_from=os.path.join(root, "video"), freeze=freeze,
                             num_epochs=args.segment_epochs, base_learning_rate=1e-4, learning_rate_decay=1.0,
                             batch_size=256)
        tuned_map = max(tuned_map, value)
        rows.append([f"+ fine-tuned on the segment ratings{' (g frozen)' if freeze else ''}", f"{seconds:.0f}",
                     f"{value:.4f}", f"{value - video_map:+.4f}"])
    text = f"""## 2019 segments on synthetic data: fine-tuning on the ratings vs the video-level model (issue #17)

Machine: {common.machine()}. {args.model} ({MODELS[args.model]}), {args.videos} synthetic training videos with
segment ratings ({CLASSES} classes, {RGB} + {AUDIO} features, 30-90 frames; each rated class is visible only in
windows of 5-10 frames), {args.videos // 5} held out. {args.epochs} epochs on the video labels (Adam 1e-3, batch 64),
then {args.segment_epochs} epochs on the rated segments (Adam 1e-4 constant, batch 256, `--init_from`). Segment
MAP@100K of the held-out videos' rated segments (eval.py --segment_labels).

{common.table(["model", "train s", "segment MAP", "vs video-level"], rows)}
"""
    if not args.no_record:
        common.record("quality_segments", text)
    print(f"quality_segments: video-level {video_map:.4f}, fine-tuned {tuned_map:.4f}")


if __name__ == "__main__":
    main()
