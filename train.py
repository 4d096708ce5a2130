"""Trains a YouTube-8M model: the starter code's flags (google/youtube-8m train.py) on TF 2 / Keras 3.

    python train.py --train_data_pattern='gs://.../train*.tfrecord' --train_dir=/tmp/model \
        --frame_features --feature_names=rgb,audio --feature_sizes=1024,128 --preset=final/lstm-m-o-moe2-huber

Resumes from the latest checkpoint in --train_dir unless --start_new_model. `--list_presets` and `--list_models`
print one name per line.
"""

from absl import flags

from yt8m_tf import cli, flags as yt8m_flags, presets, registry
from yt8m_tf.training import trainer

yt8m_flags.define_train_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]} (flags take the form --name=value)")
    if FLAGS.list_presets or FLAGS.list_models:
        print("\n".join(presets.PRESETS if FLAGS.list_presets else registry.MODEL_NAMES))
        return
    settings, options = yt8m_flags.training_run()
    if not options.train_data_pattern:
        cli.fail("--train_data_pattern is required")
    registry.check_settings(settings)
    result = trainer.train(settings, options)
    print(f"trained to step {result['step']} (loss {result['loss']:.4f}) in {result['seconds']:.0f} s; "
          f"checkpoint {result['checkpoint']}; export {result['export']}; weights {result['weights']:.6f}")


if __name__ == "__main__":
    cli.run(main)
