"""Model registry: every model builds, trains two steps and reads exactly its inputs; parameter counts,
mixed precision, preset and .weights.h5 initialisation, backbone freezing. Nothing is downloaded."""
import keras
import numpy as np
import pytest

from gtzan_tf.errors import UserError
from gtzan_tf.models import MODEL_NAMES, build_model, get_spec, model_inputs, set_backbone_trainable
from gtzan_tf.models.backbones import BACKBONES

N_CLASSES = 5
BATCH = 4
SMALL_SEGMENT = (32, 16)
BACKBONE_SEGMENT = (64, 32)  # VGG needs 32 frames and bins at least; ResNets take anything
MUSICNN_PATCH = (187, 96)  # musicnn models read their fixed 3 s patches
# Tracing the train step of these takes longer than running it; resnet18 and cnn2d_msd cover graph mode.
EAGER = {"resnet34", "resnet50", "resnet101", "resnet34_msd"}


def segment_shape_for(name):
    if get_spec(name).feature_kind == "musicnn":
        return MUSICNN_PATCH
    return BACKBONE_SEGMENT if get_spec(name).has_backbone else SMALL_SEGMENT


def random_batch(name, segment_shape, n, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"logmel": segment_shape, "musicnn": segment_shape, "msd_embedding": (753,), "mtt_embedding": (753,)}
    inputs = {key: rng.standard_normal((n, *shapes[key])).astype("float32") for key in model_inputs(name)}
    return inputs, rng.integers(0, N_CLASSES, n)


def assert_probabilities(probs, n):
    probs = keras.ops.convert_to_numpy(probs)
    assert probs.shape == (n, N_CLASSES)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_registry_names_in_order():
    assert MODEL_NAMES == (
        "cnn1d", "cnn1d_q1", "mlp_msd", "mlp_mtt", "cnn2d", "cnn2d_msd", "vgg13", "vgg16", "vgg19",
        "resnet18", "resnet34", "resnet50", "resnet101", "musicnn_msd", "musicnn_mtt", "musicnn_msd_fusion",
        "resnet34_msd",
    )
    for name in MODEL_NAMES:
        assert get_spec(name).description and "\n" not in get_spec(name).description


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_trains_two_steps(name):
    shape = segment_shape_for(name)
    model = build_model(name, segment_shape=shape, n_classes=N_CLASSES, dropout=0.1, l2=1e-4)
    assert sorted(tensor.name for tensor in model.inputs) == sorted(model_inputs(name))  # Keras sorts dict inputs
    assert model.output_names == ["genre"]
    assert model.losses  # the l2 penalties
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  run_eagerly=name in EAGER)
    x, y = random_batch(name, shape, 2 * BATCH)
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert_probabilities(model(x, training=False), 2 * BATCH)


@pytest.mark.parametrize("name", ["vgg13", "resnet18"])
def test_backbones_take_reference_segment(name):
    x, _ = random_batch(name, (125, 96), 1)
    assert_probabilities(build_model(name, n_classes=N_CLASSES)(x), 1)


def test_vgg_rejects_too_small_segment():
    with pytest.raises(UserError, match="at least 32"):
        build_model("vgg16", segment_shape=SMALL_SEGMENT)


def test_cnn1d_q1_has_reference_parameter_count():
    model = build_model("cnn1d_q1", segment_shape=(125, 96), n_classes=8)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 45_784


def test_unknown_names_raise_user_error():
    with pytest.raises(UserError, match="unknown model 'resnet35'.*resnet34_msd") as info:
        get_spec("resnet35")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="unknown fusion"):
        build_model("resnet34_msd", fusion="deep")


def test_wide_fusion_concatenates_unprojected_branches():
    model = build_model("resnet34_msd", segment_shape=BACKBONE_SEGMENT, fusion="wide")
    assert model.get_layer("fusion").output.shape == (None, 512 + 32)
    assert build_model("resnet34_msd", segment_shape=BACKBONE_SEGMENT).get_layer("fusion").output.shape == (None, 16)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", ["cnn2d_msd", "resnet18"])
def test_mixed_precision_output_is_float32(name, mixed_precision):
    model = build_model(name, segment_shape=segment_shape_for(name), n_classes=N_CLASSES)
    assert model.get_layer("logits").compute_dtype == "float16"
    x, _ = random_batch(name, segment_shape_for(name), 2)
    assert_probabilities(model(x), 2)


@pytest.fixture(scope="module")
def resnet18_preset(tmp_path_factory):
    """A ResNet18 backbone saved as a local KerasHub preset, and its weights."""
    backbone = build_model("resnet18", segment_shape=BACKBONE_SEGMENT).get_layer("backbone")
    folder = tmp_path_factory.mktemp("resnet18_preset")
    backbone.save_to_preset(str(folder))
    return str(folder), [w.numpy() for w in backbone.weights]


def test_local_preset_round_trip(resnet18_preset):
    folder, saved = resnet18_preset
    model = build_model("resnet18", segment_shape=BACKBONE_SEGMENT, n_classes=N_CLASSES, init=folder)
    loaded = model.get_layer("backbone").weights
    assert len(loaded) == len(saved)
    for weight, expected in zip(loaded, saved):
        np.testing.assert_array_equal(weight.numpy(), expected)
    x, _ = random_batch("resnet18", (125, 96), 1)
    assert_probabilities(build_model("resnet18", n_classes=N_CLASSES, init=folder)(x), 1)


def test_local_preset_follows_mixed_precision(resnet18_preset, mixed_precision):
    model = build_model("resnet18", segment_shape=BACKBONE_SEGMENT, init=resnet18_preset[0])
    assert model.get_layer("backbone").get_layer("conv1_conv").compute_dtype == "float16"


def test_imagenet_init_names_a_builtin_preset_of_each_backbone():
    for arch in BACKBONES.values():
        assert arch.imagenet_preset in arch.cls.presets


@pytest.mark.parametrize(
    "name, init, message",
    [
        ("resnet34", "PRESET", "does not fit resnet34"),
        ("vgg13", "PRESET", "cannot load preset"),
        ("resnet18", "missing_folder", "is not 'scratch'"),
        ("cnn2d", "PRESET", "has no backbone"),
        ("cnn1d", "missing.weights.h5", "weights file not found"),
    ],
)
def test_bad_init_raises_user_error(resnet18_preset, tmp_path, name, init, message):
    init = resnet18_preset[0] if init == "PRESET" else str(tmp_path / init)
    with pytest.raises(UserError, match=message) as info:
        build_model(name, segment_shape=BACKBONE_SEGMENT, init=init)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cnn1d_q1", "cnn2d_msd"])
def test_weights_file_round_trip(name, tmp_path):
    path = str(tmp_path / f"{name}.weights.h5")
    saved = build_model(name, segment_shape=SMALL_SEGMENT, n_classes=N_CLASSES)
    saved.save_weights(path)
    loaded = build_model(name, segment_shape=SMALL_SEGMENT, n_classes=N_CLASSES, init=path)
    for weight, expected in zip(loaded.weights, saved.weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), expected.numpy())


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_file_of_another_architecture_raises_user_error(tmp_path):
    path = str(tmp_path / "q1.weights.h5")
    build_model("cnn1d_q1", segment_shape=SMALL_SEGMENT).save_weights(path)
    with pytest.raises(UserError, match="cannot load"):
        build_model("cnn1d", segment_shape=SMALL_SEGMENT, init=path)


def test_set_backbone_trainable_freezes_exactly_the_backbone():
    model = build_model("resnet34_msd", segment_shape=BACKBONE_SEGMENT, n_classes=N_CLASSES)
    backbone_ids = {id(w) for w in model.get_layer("backbone").trainable_weights}
    all_trainable = {id(w) for w in model.trainable_weights}
    assert backbone_ids < all_trainable

    set_backbone_trainable(model, False)
    assert {id(w) for w in model.trainable_weights} == all_trainable - backbone_ids
    set_backbone_trainable(model, True)
    assert {id(w) for w in model.trainable_weights} == all_trainable

    with pytest.raises(UserError, match="no backbone"):
        set_backbone_trainable(build_model("cnn1d"), False)



def test_frozen_backbone_trains_once_unfrozen():
    model = build_model("resnet18", segment_shape=BACKBONE_SEGMENT, n_classes=N_CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", run_eagerly=True)
    x, y = random_batch("resnet18", BACKBONE_SEGMENT, BATCH)
    kernel = model.get_layer("backbone").get_layer("conv1_conv").kernel
    before = kernel.numpy()

    set_backbone_trainable(model, False)
    model.fit(x, y, verbose=0)
    np.testing.assert_array_equal(kernel.numpy(), before)
    set_backbone_trainable(model, True)
    model.fit(x, y, verbose=0)  # the optimizer was built with the backbone's variables too
    assert not np.array_equal(kernel.numpy(), before)

@pytest.mark.parametrize("name", ["cnn2d_msd", "resnet18"])
def test_keras_file_round_trip(name, tmp_path):
    model = build_model(name, segment_shape=segment_shape_for(name), n_classes=N_CLASSES, dropout=0.1, l2=1e-4)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    x, _ = random_batch(name, segment_shape_for(name), 2)
    np.testing.assert_allclose(keras.models.load_model(path)(x), model(x), atol=1e-6)
