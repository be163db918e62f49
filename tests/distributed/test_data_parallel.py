"""The pieces of ``xpnet.DataParallel`` in one process (a world of one): slots cover each batch, the
random streams of slots are named independently, and a step of one slot is the plain training loop's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import xpnet
from xpnet.arrays.backend import numpy_backend
from xpnet.arrays.streams import DROPOUT, RandomStream
from xpnet.distributed.parallel import slot_bounds

pytest.importorskip("mpi4py")


@pytest.mark.parametrize(("start", "stop", "slots"), [(0, 32, 4), (64, 102, 4), (0, 3, 4), (10, 11, 1), (0, 7, 3)])
def test_slots_cut_a_batch_into_contiguous_shares_differing_by_at_most_one_row(start, stop, slots):
    bounds = [slot_bounds(start, stop, slot, slots) for slot in range(slots)]
    assert bounds[0][0] == start and bounds[-1][1] == stop
    assert all(end == next_start for (_, end), (next_start, _) in itertools.pairwise(bounds))
    sizes = [end - first for first, end in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_a_child_stream_is_named_by_its_key_alone():
    parent = RandomStream(numpy_backend(), 7, DROPOUT, 2)
    draws = parent.child(5, 1).uniform((4,), np.float32)
    np.testing.assert_array_equal(draws, RandomStream(numpy_backend(), 7, DROPOUT, 2, 5, 1).uniform((4,), np.float32))
    assert not np.array_equal(draws, parent.child(5, 2).uniform((4,), np.float32))
    assert not np.array_equal(draws, parent.uniform((4,), np.float32))


def test_one_slot_on_one_rank_trains_exactly_what_the_plain_loop_trains():
    x, y, _x_test, _y_test = xpnet.load_digits()
    settings = {"hidden": [32], "epochs": 2, "device": "cpu"}
    plain = xpnet.Model(**settings)
    plain.fit(x, y)
    parallel = xpnet.DataParallel(micro_batches=1)
    shared = xpnet.Model(**settings)
    parallel.fit(shared, x, y)
    for mine, theirs in zip(shared.network.parameters(), plain.network.parameters()):
        np.testing.assert_array_equal(mine, theirs)
    assert [record["train_loss"] for record in shared.history] == [record["train_loss"] for record in plain.history]


def test_reduction_settings_are_checked():
    with pytest.raises(xpnet.XpnetError, match="unknown reduction 'tree': choose one of ordered, allreduce"):
        xpnet.DataParallel(reduction="tree")
    with pytest.raises(xpnet.XpnetError, match="micro_batches must be a positive integer, got 0"):
        xpnet.DataParallel(micro_batches=0)


def test_a_slots_dropout_masks_are_drawn_from_the_stream_of_its_epoch_batch_and_slot(monkeypatch):
    """Every slot of every batch draws its own masks, from the stream the seed, epoch, batch and slot name."""
    x, y, _x_test, _y_test = xpnet.load_digits()
    x, y = x[:64], y[:64]
    draws = []
    forward = xpnet.Dropout.forward

    def recording_forward(self, inputs, *, training=False, rng=None):
        if training:  # the layer's first draw from rng is its mask; a stream of the same name draws it again
            draws.append(np.asarray(rng.child().uniform(inputs.shape, inputs.dtype)))
        return forward(self, inputs, training=training, rng=rng)

    monkeypatch.setattr(xpnet.Dropout, "forward", recording_forward)
    model = xpnet.Model(hidden=[8], dropout=0.5, batch_size=32, epochs=1, seed=3, device="cpu")
    xpnet.DataParallel(micro_batches=2).fit(model, x, y)
    slots = [(batch, slot) for batch in range(2) for slot in range(2)]
    assert len(draws) == len(slots)
    for (batch, slot), drawn in zip(slots, draws):
        expected = RandomStream(numpy_backend(), 3, DROPOUT, 0, batch, slot).uniform(drawn.shape, np.float32)
        np.testing.assert_array_equal(drawn, expected)
    assert not np.array_equal(draws[0], draws[2])  # slot 0 of batches 0 and 1


def test_a_data_parallel_epoch_reads_the_device_per_epoch_not_per_step(monkeypatch):
    """The ranks agree on a stop request on the host, so a step whose gradients stay on the device (NCCL's
    exchange, here a world of one whose exchange hands the rows back as they are, on PyTorch) reads
    nothing back: 4 steps an epoch and 16 read the same number of times (the epoch's parameter check)."""
    from conftest import CallLog, import_torch

    torch = import_torch()
    x, y, _x_test, _y_test = xpnet.load_digits()
    x, y = torch.asarray(x[:256]), torch.asarray(y[:256])

    class DeviceExchange:
        def gather(self, rows):
            return rows

    reads = {}
    for batch_size in (64, 16):
        parallel = xpnet.DataParallel(micro_batches=2)
        monkeypatch.setattr(parallel, "_exchange", lambda backend: DeviceExchange())
        model = xpnet.Model(hidden=[16], batch_size=batch_size, epochs=1, device="auto")
        parallel.fit(model, x, y)
        log = CallLog(monkeypatch)
        for name in ("item", "numpy", "__float__", "__int__", "__bool__", "__index__", "__array__", "__dlpack__"):
            log.watch(torch.Tensor, name)
        model.epoch_runner(
            model.network,
            model.optimizer,
            xpnet.nn.losses.get("cross_entropy"),
            x,
            y,
            lr=1e-3,
            batch_size=batch_size,
            order=torch.arange(256),
            dropout_rng=RandomStream(model.backend, 0, DROPOUT, 1),
            classify=True,
        )
        reads[batch_size] = len(log.calls)
        monkeypatch.undo()
    assert reads[64] == reads[16], reads


def test_data_parallel_training_refuses_arrays_that_cannot_be_written_by_name():
    """The exchanged buffer is written in place each step: JAX's arrays are refused with the fix."""
    jax = pytest.importorskip("jax")
    x, y, _x_test, _y_test = xpnet.load_digits()
    model = xpnet.Model(hidden=[8], epochs=1, device="auto")
    with pytest.raises(
        xpnet.XpnetError, match=r"^data-parallel training writes .* jax.numpy arrays do not allow: train"
    ):
        xpnet.DataParallel().fit(model, jax.numpy.asarray(x[:64]), jax.numpy.asarray(y[:64]))


def test_data_parallel_training_refuses_sample_weights_by_name():
    """A slot's weighted mean is over its own rows' weights, so the slots would not add up to the batch's."""
    x, y, _x_test, _y_test = xpnet.load_digits()
    model = xpnet.Model(hidden=[8], epochs=1, device="cpu")
    with pytest.raises(xpnet.XpnetError, match=r"^data-parallel training takes no sample_weight yet"):
        xpnet.DataParallel().fit(model, x[:64], y[:64], sample_weight=np.ones(64))
    assert model.epochs_done == 0
