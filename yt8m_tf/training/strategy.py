"""`--strategy` -> a tf.distribute strategy (one place), plus what the loop needs to know about the cluster: the
chief/worker facts, this worker's replicas, the TPU path rule, and the collectives that keep workers in step."""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
LOCAL_TPU = "local"  # a TPU VM's own chips (TPUClusterResolver(tpu="local"))


class StrategyError(ValueError):
    """A strategy that cannot run as asked; the message is one line."""


def make_strategy(name="auto", tpu="", cpu_devices=0):
    """auto: TPU if `tpu` is given, else Mirrored over all GPUs when there are several, else the default strategy.
    `--strategy=tpu` without `--tpu` uses the TPU VM's own chips (`local`). Mirrored without GPUs runs over the
    first `cpu_devices` logical CPUs (all when 0; `split_cpu` makes them)."""
    if name not in STRATEGIES:
        raise StrategyError(f"--strategy '{name}' is not one of {', '.join(STRATEGIES)}")
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        name = "tpu" if tpu else ("mirrored" if len(gpus) > 1 else "default")
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or LOCAL_TPU)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise StrategyError("--strategy multi_worker needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # Each MirroredStrategy numbers its collective groups from the class attribute `_collective_key_base`:
        # two strategies of different sizes in one process (train() called twice) must not share group keys.
        tf.distribute.MirroredStrategy._collective_key_base += 1 << 20
        return tf.distribute.MirroredStrategy(None if gpus else cpus[:cpu_devices or len(cpus)])
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def check_remote_tpu_paths(tpu, paths):
    """A TPU node reached over the network (`--tpu=NAME` or grpc://, not `local`) reads the data and writes
    --train_dir itself: every path must be gs://. `paths`: {flag: value}; empty values are ignored."""
    if not tpu or tpu == LOCAL_TPU:
        return
    for flag, value in paths.items():
        local = [p for p in str(value or "").split(",") if p.strip() and not p.strip().startswith("gs://")]
        if local:
            raise StrategyError(f"--{flag} '{local[0]}' is a local path, but --tpu={tpu} is a TPU node that reads "
                                f"and writes Cloud Storage only: use gs:// paths (or run on the TPU VM with "
                                f"--tpu={LOCAL_TPU})")


def limit_gpus(count):
    """Makes only the first `count` GPUs visible (--num_gpu), before TensorFlow starts up."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > count:
        tf.config.set_visible_devices(gpus[:count], "GPU")


def split_cpu(count):
    """Splits the host CPU into `count` logical devices (multi-replica code without GPUs), before TensorFlow starts
    up; nothing to do when it is split into at least that many already."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or ()) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise StrategyError(f"--logical_cpu_devices {count}: TensorFlow has already started with fewer CPU "
                            "devices") from None


def worker_info(strategy):
    """(task index, number of input workers, is_chief) for the strategy's cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0, 1, True
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    task_type, task_id = task.get("type", "worker"), int(task.get("index", 0))
    index = task_id + (1 if "chief" in cluster and task_type == "worker" else 0)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return index, max(workers, 1), is_chief


def local_replicas(strategy):
    """The replicas this worker runs (all of them, except under MultiWorkerMirroredStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return len(strategy.extended.worker_devices)
    return strategy.num_replicas_in_sync


def sum_over_replicas(strategy, value_fn):
    """sum over every replica of every worker of `value_fn(replica_id)` (an int64 scalar): a collective that
    every worker must call at the same point (it also waits for all of them)."""

    @tf.function
    def reduce():
        def replica_value():
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM,
                                      tf.cast(value_fn(context.replica_id_in_sync_group), tf.int64))
        return strategy.experimental_local_results(strategy.run(replica_value))[0]

    return int(reduce())


def broadcast_from_chief(strategy, value):
    """The chief's `value` (an int below 2**62) on every worker; the others pass anything."""
    return sum_over_replicas(strategy, lambda replica: tf.where(replica == 0, tf.constant(value, tf.int64),
                                                                tf.constant(0, tf.int64)))


def count_over_workers(strategy, flag):
    """How many workers pass a true `flag` (every worker calls it)."""
    local = local_replicas(strategy)
    return sum_over_replicas(strategy, lambda replica: tf.constant(int(bool(flag)), tf.int64)) // local
